"""One module per algorithm family, each holding its whole loop top to bottom."""
