"""Which part of the GAN step is behind torch: each part timed in JAX and torch, interleaved.

  python experiments/speed/probe_parts.py --arch=dcgan64 [--rounds=10]

Parts (batch B): G forward (train mode); G forward + backward of sum(G(z) * c);
D forward + backward (weights and input) on B images; the Adam update of G's and D's
parameters. JAX uses dcgan_jax.models with the default config (hybrid convs,
gemv batch norm); torch the reference models. Prints ms per part and
torch/JAX ratios (medians over rounds, parts alternating JAX / torch).
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax
import torch

sys.path.insert(0, os.path.dirname(__file__))
import probe_step  # pylint: disable=g-import-not-at-top
from dcgan_jax import models  # pylint: disable=g-import-not-at-top
from experiments.torch_reference import models as torch_models  # pylint: disable=g-import-not-at-top,line-too-long


def jax_parts(config, batch):
  g, d = models.create_models(config, 3)
  size = config.image_size
  z = jax.random.normal(jax.random.PRNGKey(0), (batch, config.model.latent_dim))
  x = jax.random.uniform(jax.random.PRNGKey(1), (batch, size, size, 3), minval=-1, maxval=1)
  gv = g.init(jax.random.PRNGKey(2), z)
  dv = d.init(jax.random.PRNGKey(3), x)
  c = jax.random.normal(jax.random.PRNGKey(4), (batch, size, size, 3))

  def g_fwd(gv, z):
    return g.apply(gv, z, train=True, mutable=['batch_stats'])[0]

  def g_loss(params, gv, z):
    return jnp.sum(g_fwd({**gv, 'params': params}, z) * c)

  def d_loss(params, dv, x):
    logits, _ = d.apply({**dv, 'params': params}, x, train=True, update_stats=True,
                        mutable=['batch_stats'])
    return jnp.sum(logits)

  g_fb = jax.jit(jax.grad(g_loss, argnums=(0, 2)))
  d_fb = jax.jit(jax.grad(d_loss, argnums=(0, 2)))
  tx = optax.adam(2e-4, 0.5)
  params = {'g': gv['params'], 'd': dv['params']}
  opt_state = tx.init(params)

  # Donated, as in the train step (in place, like torch's optimizer step).
  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def adam(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
  grads = jax.tree.map(jnp.ones_like, params)
  adam_state = [jax.tree.map(jnp.copy, params), opt_state]

  def adam_step():
    adam_state[:] = adam(*adam_state, grads)
    jax.block_until_ready(adam_state)
  fwd = jax.jit(g_fwd)
  return {'g_fwd': lambda: jax.block_until_ready(fwd(gv, z)),
          'g_fwd_bwd': lambda: jax.block_until_ready(g_fb(gv['params'], gv, z)),
          'd_fwd_bwd': lambda: jax.block_until_ready(d_fb(dv['params'], dv, x)),
          'adam': adam_step}


def torch_parts(arch, batch):
  g, d, latent_dim, size = torch_models.create_models(arch)
  z = torch.randn(batch, latent_dim)
  x = (torch.rand(batch, 3, size, size) * 2 - 1).requires_grad_()
  zg = z.clone().requires_grad_()
  c = torch.randn(batch, 3, size, size)
  opt = torch.optim.Adam([*g.parameters(), *d.parameters()], lr=2e-4, betas=(0.5, 0.999))
  for p in [*g.parameters(), *d.parameters()]:
    p.grad = torch.ones_like(p)

  def g_fwd():
    with torch.no_grad():
      g(z)

  def g_fwd_bwd():
    g.zero_grad(set_to_none=True)
    (g(zg) * c).sum().backward()

  def d_fwd_bwd():
    d.zero_grad(set_to_none=True)
    d(x).sum().backward()

  def adam():
    opt.step()
  return {'g_fwd': g_fwd, 'g_fwd_bwd': g_fwd_bwd, 'd_fwd_bwd': d_fwd_bwd, 'adam': adam}


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--arch', default='dcgan64')
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--rounds', type=int, default=10)
  args = p.parse_args()
  torch.set_num_threads(2)
  config = probe_step.arch_config(args.arch, args.batch, 'float32')
  jp, tp = jax_parts(config, args.batch), torch_parts(args.arch, args.batch)
  times = {f'{k}:{fw}': [] for k in jp for fw in ('jax', 'torch')}
  for name in jp:
    for _ in range(2):
      jp[name]()
      tp[name]()
  for _ in range(args.rounds):
    for name in jp:
      for fw, fn in (('jax', jp[name]), ('torch', tp[name])):
        t = time.perf_counter()
        fn()
        times[f'{name}:{fw}'].append(time.perf_counter() - t)
  out = {'arch': args.arch, 'load_avg_1m': round(os.getloadavg()[0], 1)}
  for name in jp:
    j = statistics.median(times[f'{name}:jax']) * 1e3
    t = statistics.median(times[f'{name}:torch']) * 1e3
    out[name] = {'jax_ms': round(j, 1), 'torch_ms': round(t, 1), 'ratio': round(t / j, 2)}
  print(json.dumps(out), flush=True)


if __name__ == '__main__':
  main()
