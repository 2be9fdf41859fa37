"""Runners of the five seed studies (python -m experiments.run --study=000 ...)."""
