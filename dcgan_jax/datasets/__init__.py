"""TFDS builders shipped with dcgan_jax; importing this package registers them."""

from dcgan_jax.datasets import offline_mnist  # noqa: F401  (registers 'offline_mnist')
