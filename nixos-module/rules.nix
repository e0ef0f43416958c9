# The shapes the agent and controller accept, checked at evaluation time so an assertion can
# tell the operator which option to fix before anything is built.
{ lib }:
let
  matches = regex: value: builtins.match regex value != null;
in
rec {
  # Mirrors shared/src/names.ts.
  hostNameRule = "lower-case letters, digits and inner hyphens, at most 63 characters";
  isHostName = matches "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";

  isHttpUrl = matches "https?://[^/?#[:space:]]+([/?#][^[:space:]]*)?";

  # "name:base64" of 32 bytes, as shared/src/keys.ts and Nix write public keys.
  isPublicKey = matches "[A-Za-z0-9][A-Za-z0-9._-]{0,63}:[A-Za-z0-9+/]{43}=";

  isAbsolute = lib.hasPrefix "/";

  hasDotDot = path: lib.elem ".." (lib.splitString "/" path);

  # A directory strictly below `dir`.
  isUnder =
    dir: path: lib.hasPrefix "${dir}/" path && path != "${dir}/" && !(hasDotDot path);

  # Secrets are read at run time from outside the world-readable store.
  isSecretPath =
    path: isAbsolute path && !(lib.hasPrefix "${builtins.storeDir}/" path) && !(hasDotDot path);
}
