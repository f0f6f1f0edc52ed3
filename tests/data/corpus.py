"""The sizes of the unlabeled corpus (the `corpus` fixture of conftest.py) that the stream and batching tests
read."""

NUM_FOLDER_IMAGES = 23  # plus one corrupt file
NUM_PARQUET_IMAGES = 9
