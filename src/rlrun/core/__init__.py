"""Pieces every algorithm loop shares: errors, config validation, device, seeding,
checkpoints, the logger and the run context. Kept small and free of torch at import time
so that `rlrun --help` and config errors answer fast."""
