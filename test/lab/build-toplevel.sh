# Builder of one lab toplevel: the files an agent looks at in a NixOS system, and a
# switch-to-configuration whose behaviour is chosen by $fault.
set -eu
/bin/mkdir -p "$out/bin" "$out/etc"
/bin/ln -s "$sw" "$out/sw"
/bin/ln -s "$kernel/bzImage" "$out/kernel"
/bin/ln -s "$kernel/initrd" "$out/initrd"
/bin/ln -s "$kernel/lib/modules" "$out/kernel-modules"
echo "$label" > "$out/nixos-version"
echo "$health" > "$out/etc/health"
echo "$fault" > "$out/lab-fault"
# Referencing every filler path makes them part of the closure, as packages are in a real one.
: > "$out/lab-packages"
for d in $deps; do echo "$d" >> "$out/lab-packages"; done
{
  echo '#!/bin/sh'
  echo "self=$out"
  echo "fault=$fault"
  echo "ip=$ip"
  /bin/cat "$template"
} > "$out/bin/switch-to-configuration"
/bin/chmod 0555 "$out/bin/switch-to-configuration"
# What NixOS writes when a system declares switch inhibitors (values whose change needs a reboot).
if [ -n "${switchInhibitors:-}" ]; then printf '%s\n' "$switchInhibitors" > "$out/switch-inhibitors"; fi
# The agent's configuration, as the NixOS module installs it as /etc/shoal/agent.json.
if [ -n "${agentConfig:-}" ]; then /bin/mkdir -p "$out/etc/shoal" && printf '%s\n' "$agentConfig" > "$out/etc/shoal/agent.json"; fi
