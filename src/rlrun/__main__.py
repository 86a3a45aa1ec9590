"""`python -m rlrun ...` is the same as `rlrun ...`."""

import sys

from rlrun.cli import main

sys.argv[0] = "rlrun"  # usage lines name the command, not __main__.py
main()
