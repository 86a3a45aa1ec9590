"""Data sets of the non-RL loops: images for diffusion."""
