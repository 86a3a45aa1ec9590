"""Networks, built from `configs/network/*.yaml` with `hydra.utils.instantiate`."""
