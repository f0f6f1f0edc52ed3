"""Entry point for `accelerate launch scripts/cfa.py ...`; the options are in `cskd_hf.training.cfa` (--help)."""

from cskd_hf.training.cfa import main

if __name__ == "__main__":
    main()
