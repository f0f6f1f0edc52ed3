"""`accelerate launch scripts/finetune.py ...`: options in `cskd_hf.training.supervised` (see --help)."""

from cskd_hf.training.supervised import main

if __name__ == "__main__":
    main()
