# The rendered JSON of a service, validated at build time by the service's own schema
# (`<exe> check-config`), so a bad field fails the build, naming the field, instead of leaving a
# host with a service that cannot start.
{ lib, pkgs }:
{
  name,
  rendered,
  exe,
  check,
}:
if check then
  pkgs.runCommand name
    {
      preferLocalBuild = true;
      passthru.unchecked = rendered;
    }
    ''
      ${exe} check-config --config ${rendered}
      cp ${rendered} $out
    ''
else
  rendered
