"""`python -m cskd_hf.cli`: the same as `cskd`."""

import sys

from .cskd_cli import main

sys.exit(main())
