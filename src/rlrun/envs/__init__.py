"""Tasks: bandit testbeds here; Gymnasium construction and the project's own envs later."""
