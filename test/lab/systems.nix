# Fake NixOS toplevels for the fleet lab (see README.md next to this file).
#
# Built with `nix-build systems.nix --arg specFile ./specs.json --option sandbox false`, or
# through flake.nix (pure evaluation: the spec and the system are passed in, not read from outside).
# Builders get no PATH, so every tool is named by absolute path; the lab runs on the
# machine's own /bin, which every lab host shares (only /nix and /run are per host).
{
  specFile ? null,
  spec ? builtins.fromJSON (builtins.readFile specFile),
  system ? builtins.currentSystem,
}:
let
  ip = spec.ipCommand;

  # Shared by every system, so a second generation downloads only what changed.
  sw = builtins.derivation {
    name = "lab-sw";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/bin && echo 'lab userland' > $out/README" ];
  };

  # A kernel per version string, so a test can tell whether a new system needs a reboot.
  kernel = version: builtins.derivation {
    name = "lab-kernel-${version}";
    inherit system version;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/lib/modules/$version && echo \"lab kernel $version\" > $out/bzImage && echo \"lab initrd $version\" > $out/initrd" ];
  };

  # `count` small store paths totalling count * bytesEach, to give a toplevel a closure
  # with the shape of a real one for benchmarks.
  filler = name: f: builtins.genList (i: builtins.derivation {
    name = "lab-pkg-${name}-${toString i}";
    inherit system;
    bytes = toString f.bytesEach;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir -p $out/share && /bin/head -c $bytes /dev/urandom > $out/share/blob" ];
  }) f.count;

  # Packages named like nixpkgs' ("openssl-3.3.1", "openssl-3.3.1-dev"), each `bytes` of random
  # data referencing the packages in its `deps`: closures a diff can read names and versions from.
  # The same spec gives the same store path, so systems listing one package share it.
  packageSet = specs:
    let
      self = builtins.listToAttrs (map (p: {
        name = p.name;
        value = builtins.derivation {
          inherit (p) name;
          inherit system;
          bytes = toString p.bytes;
          deps = map (d: self.${d}) p.deps;
          builder = "/bin/sh";
          args = [ "-c" "/bin/mkdir -p $out/share && /bin/head -c $bytes /dev/urandom > $out/share/blob && for d in $deps; do echo $d >> $out/share/references; done" ];
        };
      }) specs);
    in builtins.attrValues self;

  toplevel = s:
    let deps = (if s ? filler && s.filler != null then filler s.name s.filler else [ ])
      ++ (if s ? packages && s.packages != null then packageSet s.packages else [ ]);
    in builtins.derivation ({
      name = "nixos-system-${s.name}";
      inherit system;
      inherit (s) fault label;
      inherit sw ip;
      kernel = kernel s.kernel;
      health = if s.fault == "fail-health" then "bad" else "ok";
      template = ./switch-to-configuration.sh;
      deps = deps;
      builder = "/bin/sh";
      args = [ ./build-toplevel.sh ];
    } // (if s ? switchInhibitors && s.switchInhibitors != null then { inherit (s) switchInhibitors; } else { })
      # The agent's configuration where the NixOS module puts it (etc/shoal/agent.json); absent
      # attributes stay out of the derivation, so systems without one keep their store paths.
      // (if s ? agentConfig && s.agentConfig != null then { inherit (s) agentConfig; } else { }));
in
builtins.listToAttrs (map (s: { name = s.name; value = toplevel s; }) spec.systems)
