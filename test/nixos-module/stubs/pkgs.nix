# The part of nixpkgs the Shoal modules use, built on builtins.derivation so that nothing
# here needs nixpkgs. Each stub keeps the shape of the real function (which attributes
# become the derivation's environment, which are passthru) so the modules use them as they
# would use nixpkgs, and a typo in an attribute name fails the evaluation.
{
  lib,
  # Given by a flake evaluation, which has no builtins.currentSystem.
  system ? builtins.currentSystem,
}:
let
  # Like stdenv's runCommand: `env` becomes the build environment, `passthru` is only added
  # to the result.
  runCommand =
    name: env: buildCommand:
    derivation (
      builtins.removeAttrs env [ "passthru" ]
      // {
        inherit name buildCommand;
        inherit system;
        builder = "/bin/sh";
        args = [
          "-c"
          buildCommand
        ];
      }
    )
    // (env.passthru or { });

  # A package whose bin/ holds the named executables; the modules only need their paths.
  fakePackage =
    name: executables:
    runCommand name { passthru.meta.mainProgram = builtins.head executables; } ''
      /bin/mkdir -p $out/bin
      for exe in ${lib.concatStringsSep " " executables}; do
        printf '#!/bin/sh\nexit 0\n' > $out/bin/$exe
        /bin/chmod +x $out/bin/$exe
      done
    '';
in
{
  inherit runCommand;

  writeText =
    name: text:
    runCommand name {
      inherit text;
      passAsFile = [ "text" ];
    } ''/bin/cp "$textPath" "$out"'';

  # nixpkgs' pkgs/pkgs-lib/formats.nix: the same value type; generate writes the same JSON
  # (nixpkgs pretty-prints it with jq, which changes no value).
  formats.json =
    { }:
    {
      type =
        with lib.types;
        let
          valueType =
            nullOr (oneOf [
              bool
              int
              float
              str
              path
              (attrsOf valueType)
              (listOf valueType)
            ])
            // {
              description = "JSON value";
            };
        in
        valueType;

      generate =
        name: value:
        runCommand name {
          value = builtins.toJSON value;
          passAsFile = [ "value" ];
        } ''/bin/cp "$valuePath" "$out"'';
    };

  shoal = fakePackage "shoal-0.1.0" [
    "shoal"
    "shoal-agent"
    "shoal-controller"
  ];
  systemd = fakePackage "systemd-257" [
    "systemctl"
    "systemd-run"
  ];
  nix = fakePackage "nix-2.28" [
    "nix-store"
    "nix-env"
  ];

  callPackage = throw "stub pkgs: callPackage is not available; the tests use pkgs.shoal";
}
