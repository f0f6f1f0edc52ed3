"""Frozen teachers: CLIP image encoders for feature alignment."""
