# Shoal built from this repository: the TypeScript compiled by `npm run build`, run by
# Node, with production node_modules (better-sqlite3's native addon built from source).
#
# Dependencies come from importNpmLock: every package is fetched by fetchurl with the
# lockfile's own "integrity" as its hash, so there is no npmDepsHash to keep in step with
# package-lock.json. See npm-lock-resolved.nix for why the lock gets URLs added first.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs,
  python3,
  makeWrapper,
}:
let
  root = ../.;

  # What the build reads; anything else in the checkout (tests, node_modules, a local dist/)
  # would only change the hash. cleanSourceWith rather than lib.fileset, which needs a
  # newer Nix than some CI machines have.
  sourceEntries = [
    "package.json"
    "package-lock.json"
    "tsconfig.json"
    "tsconfig.build.json"
    "shared"
    "controller"
    "agent"
  ];
  src = lib.cleanSourceWith {
    name = "shoal-source";
    src = root;
    filter =
      path: _type:
      let
        relative = lib.removePrefix "${toString root}/" (toString path);
      in
      lib.elem (lib.head (lib.splitString "/" relative)) sourceEntries;
  };

  packageJson = lib.importJSON ../package.json;

  packageLock = import ./npm-lock-resolved.nix { inherit lib; } {
    lock = lib.importJSON ../package-lock.json;
  };

  # executable -> entry point, relative to the installed tree. The agent runs its bundle (one
  # file built by `npm run build:agent`, dist/agent/shoal-agent.mjs): a daemon on every host,
  # where each loaded module costs memory.
  entryPoints = {
    shoal = "controller/src/cli/main.js";
    shoal-agent = "agent/shoal-agent.mjs";
    shoal-controller = "controller/src/main.js";
  };

  # Node's flags per executable, set by the wrapper so that no operator has to: the agent's
  # memory settings for a small long-running daemon (agent/node-flags, measured in bench/README.md).
  nodeFlags = {
    shoal-agent = lib.filter (line: line != "" && !lib.hasPrefix "#" line) (
      lib.splitString "\n" (builtins.readFile ../agent/node-flags)
    );
  };

  installDir = "$out/lib/node_modules/shoal";
in
buildNpmPackage {
  pname = "shoal";
  inherit (packageJson) version;
  inherit src nodejs;

  npmDeps = importNpmLock {
    npmRoot = src;
    package = packageJson;
    inherit packageLock;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # node-gyp compiles better-sqlite3; prebuild-install would try to download a binary.
  nativeBuildInputs = [
    python3
    makeWrapper
  ];
  env.npm_config_build_from_source = "true";

  npmBuildScript = "build";

  # The installed tree is the source tree with each .ts replaced by its compiled .js, so
  # every path the code finds relative to itself (controller/drizzle migrations,
  # package.json) resolves exactly as it does when run from a checkout. `npm pack` (the
  # default install) would drop dist/, which .gitignore lists.
  installPhase = ''
    runHook preInstall

    mkdir -p ${installDir}
    cp -r dist/. ${installDir}/
    for part in shared controller agent; do
      (cd "$part" && find . -type f ! -name '*.ts' ! -name '*.tsx' \
        -exec install -Dm644 {} "${installDir}/$part/{}" \;)
    done
    # importNpmLock's hook swapped in a package.json that points at store paths.
    if [ -f .package.json.orig ]; then
      cp .package.json.orig ${installDir}/package.json
    else
      cp package.json ${installDir}/package.json
    fi

    npm prune --omit=dev --no-save
    # Keep only the compiled addon: the build tree records the Node source path (closure
    # size) and the sqlite sources are not needed at run time.
    addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
    test -f "$addon" || { echo "better-sqlite3 addon was not built: $addon missing" >&2; exit 1; }
    mv "$addon" "$TMPDIR/better_sqlite3.node"
    rm -rf node_modules/better-sqlite3/{build,deps,src}
    install -Dm555 "$TMPDIR/better_sqlite3.node" "$addon"
    cp -r node_modules ${installDir}/

    ${lib.concatStrings (
      lib.mapAttrsToList (exe: entry: ''
        makeWrapper ${lib.getExe nodejs} $out/bin/${exe} ${
          lib.concatMapStrings (flag: "--add-flags ${flag} ") (nodeFlags.${exe} or [ ])
        }--add-flags ${installDir}/${entry}
      '') entryPoints
    )}

    runHook postInstall
  '';

  # Runs the compiled program, so a missing entry point or a broken addon fails the build.
  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    for exe in ${lib.concatStringsSep " " (lib.attrNames entryPoints)}; do
      test -x "$out/bin/$exe" || { echo "missing executable $exe" >&2; exit 1; }
    done
    ${lib.getExe nodejs} -e "new (require('${installDir}/node_modules/better-sqlite3'))(':memory:').exec('select 1')"
    # The agent's bundle loads under its wrapper's node flags.
    $out/bin/shoal-agent --help > /dev/null
    runHook postInstallCheck
  '';

  passthru = { inherit entryPoints nodeFlags; };

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "shoal";
    platforms = lib.platforms.linux;
  };
}
