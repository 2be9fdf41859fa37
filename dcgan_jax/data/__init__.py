"""Data: TFDS input pipelines, the offline digits builder and image helpers."""
