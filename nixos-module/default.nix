# The Shoal NixOS modules: services.shoal-agent and services.shoal-controller.
{
  imports = [
    ./agent.nix
    ./controller.nix
  ];
}
