"""An OCI distribution client: copy images between registries by digest."""
