"""DCGAN and its variants in JAX/Flax."""
