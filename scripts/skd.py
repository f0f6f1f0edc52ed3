"""Entry point for `accelerate launch scripts/skd.py ...`; the options are in `cskd_hf.training.skd` (--help)."""

from cskd_hf.training.skd import main

if __name__ == "__main__":
    main()
