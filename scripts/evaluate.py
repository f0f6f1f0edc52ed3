"""`python scripts/evaluate.py --model M [--model M2] --dataset D`: the same as `cskd evaluate`."""

import sys

from cskd_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
