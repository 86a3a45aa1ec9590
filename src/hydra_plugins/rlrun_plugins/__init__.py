"""Hydra discovers this package (the `hydra_plugins` namespace) and its search path plugin."""
