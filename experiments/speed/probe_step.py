"""Full train step probe: dcgan_jax.train's p_train_step vs the torch reference, interleaved.

  python experiments/speed/probe_step.py --arch=dcgan64 --impl=matmul [--dtype=bfloat16]

--impl sets config.model.conv_impl (xla|subpixel|matmul|hybrid, see
dcgan_jax/layers.py; 'xla' is the plain Flax formulation). Each
repeat times `steps` JAX steps then `steps` torch steps; the ratio is the
median over repeats of (JAX images/s) / (torch images/s). One JSON line.
"""

import argparse
import json
import statistics
import sys
import time

import jax
from flax import jax_utils

from configs import default
from dcgan_jax import gan_step


def arch_config(arch, batch_size, dtype, impl='hybrid'):
  config = default.get_config()
  config.model.conv_impl = 'xla' if impl == 'flax' else impl
  config.batch_size = batch_size
  config.model.dtype = dtype
  if arch == 'dcgan64':
    config.image_size = 64
    config.model.arch = 'dcgan'
    config.model.latent_dim = 100
  elif arch == 'standard_cnn32':
    config.image_size = 32
    config.model.arch = 'standard_cnn'
    config.model.latent_dim = 128
    config.model.d_norm = 'none'
    config.model.spectral_norm = True
    config.model.leaky_relu_slope = 0.1
  else:
    raise ValueError(arch)
  return config


def make_jax_step(config):
  g, d = gan_step.create_train_states(config, jax.random.PRNGKey(0),
                                      (config.image_size, config.image_size, 3))
  state = list(jax_utils.replicate((g, d)))
  key = jax_utils.replicate(jax.random.PRNGKey(1))
  batch = {'image': jax.random.uniform(
      jax.random.PRNGKey(2), (1, config.batch_size, config.image_size, config.image_size, 3),
      minval=-1, maxval=1)}
  p_step = gan_step.make_p_train_step(config)
  t0 = time.perf_counter()
  state[0], state[1], m = p_step(state[0], state[1], batch, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0

  def step():
    state[0], state[1], m = p_step(state[0], state[1], batch, key)
    return m
  return step, compile_s


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--arch', default='dcgan64')
  p.add_argument('--impl', default='matmul')
  p.add_argument('--dtype', default='float32')
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--no_torch', action='store_true')
  p.add_argument('--torch_channels_last', action='store_true')
  p.add_argument('--torch_threads', type=int, default=2)
  args = p.parse_args()
  config = arch_config(args.arch, args.batch, args.dtype, args.impl)
  jstep, compile_s = make_jax_step(config)
  if not args.no_torch:
    from experiments.torch_reference import step as tstep
    torch_step = tstep.TorchStep(args.arch, args.batch, threads=args.torch_threads,
                                 channels_last=args.torch_channels_last)
    torch_step()
  for _ in range(2):
    m = jstep()
  jax.block_until_ready(m)
  # Steps alternate JAX / torch one by one, so that both see the same load of
  # the shared machine; a repeat's rate is its images over its summed times.
  jr, tr = [], []
  for _ in range(args.repeats):
    jt = tt = 0.0
    for _ in range(args.steps):
      t0 = time.perf_counter()
      jax.block_until_ready(jstep())
      jt += time.perf_counter() - t0
      if not args.no_torch:
        t0 = time.perf_counter()
        torch_step()
        tt += time.perf_counter() - t0
    jr.append(args.batch * args.steps / jt)
    if not args.no_torch:
      tr.append(args.batch * args.steps / tt)
  out = dict(arch=args.arch, impl=args.impl, dtype=args.dtype, batch=args.batch,
             jax_img_s=round(statistics.median(jr), 1), jax_min=round(min(jr), 1),
             jax_max=round(max(jr), 1), compile_s=round(compile_s, 1))
  if tr:
    out.update(torch_img_s=round(statistics.median(tr), 1),
               ratio=round(statistics.median([a / b for a, b in zip(jr, tr)]), 3),
               ratios=[round(a / b, 2) for a, b in zip(jr, tr)])
  out['torch_threads'] = args.torch_threads
  out['load_avg_1m'] = round(__import__('os').getloadavg()[0], 1)
  out['xla_flags'] = __import__('os').environ.get('XLA_FLAGS', '')
  print(json.dumps(out), flush=True)


if __name__ == '__main__':
  sys.exit(main())
