"""`python -m epochbench analyze FINALS.csv --out DIR`."""

import sys

from .decisions import main

sys.exit(main())
