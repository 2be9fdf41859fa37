"""XLA:CPU flags that make the GAN step faster, set by the project before JAX starts.

XLA reads the XLA_FLAGS environment variable once, when the first backend is
initialised, so `set_default_cpu_flags()` must run before any JAX computation:
the package's __init__ calls it, so importing any part of dcgan_jax does. A flag already present in
XLA_FLAGS is left alone, so users can override any default, e.g.

  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=default python -m dcgan_jax.main ...

and DCGAN_JAX_NO_DEFAULT_XLA_FLAGS=1 disables the defaults altogether. The
speed each flag buys is measured in experiments/speed/NOTES.md.
"""

import os

from absl import logging

# flag name -> value. Each entry has to earn its place in experiments/speed/NOTES.md.
DEFAULT_CPU_FLAGS = {
    # XLA:CPU 0.10 sends dots, convolutions and reductions to YNNPACK fusions
    # by default. The stride-1 convolutions of conv_forms.py's sub-pixel layers
    # (and their gradients) run 2-4x faster on XLA's own Eigen kernels, and
    # the whole DCGAN-64 step ~1.8x faster (NOTES.md), so the fusions are
    # turned off: an empty list of fusion types.
    'xla_cpu_experimental_ynn_fusion_type': '',
}

DISABLE_ENV = 'DCGAN_JAX_NO_DEFAULT_XLA_FLAGS'


def _backend_initialised():
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(getattr(xla_bridge, '_backends', None))
  except ImportError:
    return False


def set_default_cpu_flags(flags=None, environ=None):
  """Appends `flags` (default DEFAULT_CPU_FLAGS) to XLA_FLAGS, unless already set.

  Args:
    flags: {flag name without dashes: value}; None means DEFAULT_CPU_FLAGS.
    environ: the environment to edit (default os.environ; for tests).

  Returns:
    The flags that were added, as a dict.
  """
  environ = os.environ if environ is None else environ
  if environ.get(DISABLE_ENV, '') not in ('', '0'):
    return {}
  flags = DEFAULT_CPU_FLAGS if flags is None else flags
  current = environ.get('XLA_FLAGS', '')
  present = {token.lstrip('-').split('=', 1)[0] for token in current.split()}
  added = {name: value for name, value in flags.items() if name not in present}
  if not added:
    return {}
  if environ is os.environ and _backend_initialised():
    logging.warning('JAX backend already initialised; XLA flags %s have no effect.', added)
  environ['XLA_FLAGS'] = ' '.join(
      [current] * bool(current) + [f'--{name}={value}' for name, value in added.items()])
  return added
