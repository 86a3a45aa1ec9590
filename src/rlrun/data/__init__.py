"""Data sets the loops learn from (text corpora; images come with the diffusion loop)."""
