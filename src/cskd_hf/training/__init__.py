"""Trainers for CFA (phase I), supervised fine-tuning and SKD / KD (phase II), run with `accelerate launch`."""
