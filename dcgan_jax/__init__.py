"""DCGAN and its variants in JAX/Flax.

Importing any part of the package applies the project's XLA:CPU defaults
(`xla_flags.DEFAULT_CPU_FLAGS`) before JAX starts its backend, so the CLI,
the library API, notebooks and the experiment runners compile the same step
and a seed gives the same numbers whichever of them runs it. Import dcgan_jax
before running any JAX computation (a warning says when that was too late).
"""

from dcgan_jax import xla_flags as _xla_flags

_xla_flags.set_default_cpu_flags()
