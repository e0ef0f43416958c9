# Body of a lab toplevel's bin/switch-to-configuration; build-toplevel.sh prepends
# self=<this toplevel>, fault=<mode> and ip=<path of ip(8)>.
#
# It changes what real NixOS activation changes, as far as an agent can see:
#   switch, test  point /run/current-system at this toplevel (switch also sets the boot default)
#   boot          sets the boot default: symlink /nix/var/lab/boot-default (persistent, like /boot)
#   dry-activate  changes nothing
# and appends "<epoch-ms> <action> <toplevel>" to /run/lab/activations.log.
#
# The network of a lab host in its own netns is the interface named in /run/lab/netns-iface;
# without that file the host shares the machine's network and nothing here touches it.
set -u
action="${1:-}"
case "$action" in
  switch|test|boot|dry-activate) ;;
  *) echo "Usage: $0 [switch|boot|test|dry-activate]" >&2; exit 1 ;;
esac

/bin/mkdir -p /run/lab
echo "$(/bin/date +%s%3N) $action $self" >> /run/lab/activations.log

set_boot_default() {
  /bin/mkdir -p /nix/var/lab
  /bin/ln -sfn "$self" /nix/var/lab/boot-default
}

network() {
  [ -r /run/lab/netns-iface ] || return 0
  "$ip" link set "$(/bin/cat /run/lab/netns-iface)" "$1"
}

case "$action" in
  dry-activate)
    echo "would restart the following units: lab-app.service"
    exit 0 ;;
  boot)
    echo "updating the boot default to $self"
    set_boot_default
    exit 0 ;;
esac

if [ "$fault" = fail-switch-early ]; then
  echo "error: $self: cannot activate: /etc/lab-app.conf is not readable" >&2
  echo "error: activation script failed; nothing was changed" >&2
  exit 1
fi

# Like NixOS: switch installs the boot loader entry first, then activates.
[ "$action" = switch ] && set_boot_default
echo "activating the configuration..."
echo "setting up /etc..."
/bin/ln -sfn "$self" /run/current-system

case "$fault" in
  ok|fail-health)
    # A good system brings the lab network (back) up, so rolling back heals a cut.
    network up ;;
  fail-switch)
    # What a real failed unit leaves behind: the new system is active, the exit is non-zero.
    echo "starting the following units: lab-app.service"
    echo "Job for lab-app.service failed because the control process exited with error code." >&2
    echo "lab-app.service: Main process exited, code=exited, status=1/FAILURE" >&2
    echo "warning: the following units failed: lab-app.service" >&2
    exit 1 ;;
  hang-switch)
    echo "starting the following units: lab-app.service"
    # exec, so that killing the switch process leaves nothing behind.
    exec /bin/sleep 2147483647 ;;
  break-network)
    echo "reloading the following units: systemd-networkd.service"
    network down ;;
  *)
    echo "error: unknown lab fault mode '$fault'" >&2
    exit 2 ;;
esac
exit 0
