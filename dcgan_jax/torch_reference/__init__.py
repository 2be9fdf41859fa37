"""PyTorch reference of the DCGAN / standard-CNN train step, for speed comparisons.

torch is an optional dependency (`pip install -e '.[torch]'`); importing this
package does not import it, `step` and `models` do.
"""


def time_torch_step(*args, **kwargs):
  """See `dcgan_jax.torch_reference.step.time_torch_step` (imports torch lazily)."""
  from dcgan_jax.torch_reference import step  # pylint: disable=g-import-not-at-top
  return step.time_torch_step(*args, **kwargs)
