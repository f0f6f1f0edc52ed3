"""Upload a model folder: `python scripts/push_to_hub.py --model DIR --repo-id ORG/NAME` (as `cskd push`)."""

import sys

from cskd_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
