"""`python -m epochbench analyze | status | report --partial | track` (epochbench.cli)."""

import sys

from .cli import main

sys.exit(main())
