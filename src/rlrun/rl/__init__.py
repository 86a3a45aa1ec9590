"""What the RL loops share and the other families do not: replay and rollout storage,
evaluation episodes, episode statistics, tabular policies, and env state for checkpoints.

Floors: this package sits above `envs` (it makes evaluation envs) and below `algos`.
"""
