# package-lock.json here carries no "resolved" URLs (npm runs with
# omit-lockfile-registry-resolved, which keeps the lock independent of the registry an
# operator uses). Nix fetchers need a URL per package, so derive the public registry's
# tarball URL from each entry's path and version; the entry's "integrity" stays the hash
# that pins the content, so a wrong URL fails the fetch instead of changing what is built.
{ lib }:
{
  lock,
  registry ? "https://registry.npmjs.org",
}:
let
  # "node_modules/a/node_modules/@s/b" installs "@s/b"; an aliased entry names its real
  # package in "name".
  packageName = path: entry: entry.name or (lib.last (lib.splitString "node_modules/" path));

  tarballUrl =
    path: entry:
    let
      name = packageName path entry;
      baseName = lib.last (lib.splitString "/" name);
    in
    "${registry}/${name}/-/${baseName}-${entry.version}.tgz";

  # The root ("") and links to local folders have nothing to fetch.
  fetchable =
    path: entry:
    path != "" && !(entry.link or false) && entry ? integrity && entry ? version && !(entry ? resolved);

  withResolved =
    path: entry: if fetchable path entry then entry // { resolved = tarballUrl path entry; } else entry;
in
lock // { packages = lib.mapAttrs withResolved lock.packages; }
