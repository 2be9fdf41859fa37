"""Helpers shared by the tests (imported as tests.support.<module>); no tests here."""

import os

# The repository root: where `python -m dcgan_jax.main --config=configs/...` runs.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
