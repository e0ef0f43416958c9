# Evaluates the Shoal modules with a real nixpkgs lib, the stub option declarations and stub
# pkgs, under the configuration the test passes as JSON; select a projection with -A.
{
  nixpkgsLib,
  configJson ? "{}",
  # A module file, for configuration JSON cannot express (Nix path values).
  extraModule ? { },
}:
let
  lib = import "${nixpkgsLib}/lib";
  pkgs = import ./stubs/pkgs.nix { inherit lib; };

  evaluated = lib.evalModules {
    modules = [
      { _module.args.pkgs = pkgs; }
      ./stubs/nixos-options.nix
      ../../nixos-module
      (builtins.fromJSON configJson)
      extraModule
    ];
  };
  inherit (evaluated) config;

  service =
    name: etcName:
    let
      svc = config.systemd.services.${name};
      file = config.environment.etc.${etcName}.source;
      rendered = file.unchecked or file;
    in
    {
      inherit (svc)
        description
        wantedBy
        wants
        after
        restartIfChanged
        unitConfig
        serviceConfig
        ;
      path = map toString svc.path;
      configFile = "${file}";
      checkCommand = if file ? unchecked then file.buildCommand else null;
      renderedFile = "${rendered}";
      renderedName = rendered.name;
      renderedJson = rendered.value;
    };
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
  agent = service "shoal-agent" "shoal/agent.json";
  controller = service "shoal-controller" "shoal/controller.json";
  users = config.users.users;
  groups = lib.attrNames config.users.groups;
  allowedTCPPorts = config.networking.firewall.allowedTCPPorts;
  systemPackages = map toString config.environment.systemPackages;
  services = lib.attrNames config.systemd.services;
  etc = lib.attrNames config.environment.etc;
  # Every option the modules declare, with its default as the NixOS manual would print it.
  optionDocs = map (o: {
    inherit (o) name;
    default = if o ? default then o.default.text else null;
  }) (
    lib.filter (o: lib.hasPrefix "services.shoal-" o.name && o.visible && !o.internal) (
      lib.optionAttrSetToDocList evaluated.options
    )
  );
  store = {
    shoal = "${pkgs.shoal}";
    nix = "${pkgs.nix}";
    systemd = "${pkgs.systemd}";
  };
}
