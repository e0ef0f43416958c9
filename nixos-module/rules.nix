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

  # The host of a URL, without user info, port or IPv6 brackets, lower-cased; null if none.
  urlHost =
    url:
    let
      m = builtins.match "[A-Za-z][A-Za-z0-9+.-]*://([^/?#@]*@)?(\\[[^]/]*]|[^]/?#:[]*).*" url;
    in
    if m == null then
      null
    else
      lib.toLower (lib.removeSuffix "]" (lib.removePrefix "[" (lib.elemAt m 1)));

  isLoopbackHost =
    host:
    host == "localhost"
    || lib.hasSuffix ".localhost" host
    || host == "::1"
    || matches "127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}" host;

  # Plain HTTP that leaves this host: what is sent can be read on the way.
  isPlainHttpToRemote =
    url:
    lib.hasPrefix "http://" (lib.toLower url)
    && (
      let
        host = urlHost url;
      in
      host == null || !(isLoopbackHost host)
    );

  isPostgresUrl = matches "postgres(ql)?://.*";

  # A password in the user info (postgres://user:secret@host) or as the `password` parameter,
  # both of which node-postgres reads.
  hasUrlPassword =
    url:
    matches "[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*:[^/?#@]*@.*" url
    || matches "[^?#]*[?]([^#]*&)?password=.*" url;

  # For messages: the URL with its password replaced by ***.
  redactUrl =
    url:
    let
      userInfo = builtins.match "([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#@]*(@.*)" url;
      withoutUser = if userInfo == null then url else "${lib.elemAt userInfo 0}:***${lib.elemAt userInfo 1}";
      param = builtins.match "([^?#]*[?]([^#]*&)?password=)[^&#]*(.*)" withoutUser;
    in
    if param == null then withoutUser else "${lib.elemAt param 0}***${lib.elemAt param 2}";

  # Query options a substituter URL may carry. Any other, `trusted` above all, can make Nix
  # accept store paths without a trusted signature; the agent's config check refuses them.
  allowedSubstituterOptions = [
    "priority"
    "want-mass-query"
  ];

  substituterOptions =
    url:
    let
      query = builtins.match "[^?#]*[?]([^#]*).*" url;
      params = lib.filter (p: p != "") (lib.splitString "&" (lib.head query));
    in
    if query == null then [ ] else map (p: lib.head (lib.splitString "=" p)) params;

  forbiddenSubstituterOptions =
    url: lib.unique (lib.filter (o: !(lib.elem o allowedSubstituterOptions)) (substituterOptions url));
}
