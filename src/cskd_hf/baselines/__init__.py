"""Baselines of the seed papers: CLIP zero-shot prompts (Hentschel et al., 2022)."""
