"""rlrun: one Hydra CLI for bandits, tabular TD, deep RL, MoE language models and diffusion."""

__version__ = "0.1.0"
