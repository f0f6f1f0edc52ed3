"""Data: image reading, datasets and the embedded sample images."""
