"""`python -m rlrun ...` is the same as `rlrun ...`."""

from rlrun.cli import main

main()
