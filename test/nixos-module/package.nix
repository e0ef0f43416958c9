# Calls nixos-module/package.nix with a real nixpkgs lib and builders that return what they
# were given, so the test can inspect the derivation it would build.
{ nixpkgsLib }:
let
  lib = import "${nixpkgsLib}/lib";
  nodejs = {
    type = "derivation";
    name = "nodejs-20.0.0";
    outPath = "/nix/store/00000000000000000000000000000000-nodejs-20.0.0";
    meta.mainProgram = "node";
  };
  package = import ../../nixos-module/package.nix {
    inherit lib nodejs;
    buildNpmPackage = args: args;
    importNpmLock = {
      __functor = _: args: { importNpmLockArgs = args; };
      npmConfigHook = "importNpmLock.npmConfigHook";
    };
    python3 = "python3";
    makeWrapper = "makeWrapper";
  };
  lockPackages = package.npmDeps.importNpmLockArgs.packageLock.packages;
in
{
  inherit (package)
    pname
    version
    installPhase
    installCheckPhase
    npmConfigHook
    npmBuildScript
    env
    ;
  inherit (package.passthru) entryPoints nodeFlags;
  node = "${nodejs}";
  # --eval does not copy sources into the store, so ask the source filter directly.
  srcIncludes = lib.genAttrs [
    "package.json"
    "package-lock.json"
    "tsconfig.json"
    "tsconfig.build.json"
    "agent"
    "agent/src/config.ts"
    "controller/drizzle/0000_init.sql"
    "controller/drizzle-pg/0000_init.sql"
    "shared/src/protocol.ts"
    "node_modules"
    "dist"
    "test"
    "test/nixos-module/eval.nix"
    "bench"
    "nixos-module"
    ".git"
  ] (relative: package.src.filter "${toString ../..}/${relative}" "regular");
  npmRoot = "${package.npmDeps.importNpmLockArgs.npmRoot}";
  src = "${package.src}";
  unresolved = lib.attrNames (lib.filterAttrs (path: p: path != "" && !(p ? resolved)) lockPackages);
  resolved = lib.mapAttrs (_: p: p.resolved or null) lockPackages;
}
