"""`python -m rlrun.report ROOT...` = `rlrun-report ROOT...`."""

import sys

from rlrun.report.cli import main

sys.exit(main())
