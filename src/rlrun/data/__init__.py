"""Data sets of the non-RL loops: text corpora for the language models, images for diffusion."""
