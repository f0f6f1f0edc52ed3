"""Baselines of the seed papers: CLIP zero-shot prompts and the CLIP linear probe (Hentschel et al., 2022)."""
