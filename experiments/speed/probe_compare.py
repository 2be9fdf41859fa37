"""Several JAX variants and the torch reference in ONE process, interleaved step by step.

  python experiments/speed/probe_compare.py --arch=dcgan64 \
      --variants=subpixel:float32:noynn,matmul:float32:ynn,subpixel:bfloat16:noynn

A variant is impl:dtype:flags[:field=value,...], where flags 'noynn' compiles
that step with xla_cpu_experimental_ynn_fusion_type='' (per-compilation
compiler_options, so variants with and without it can share the process),
'ynn' with XLA's default, and 'notree' like 'noynn' but also without XLA's
tree_reduction_rewriter pass, each optionally followed by +xla_option=value
(more XLA debug options for that compilation); the optional last part overrides config.model
fields (e.g. hybrid:float32:noynn:g_norm=none,spectral_norm=false; variants are
then separated by ';'). Every round runs one step of each variant and of torch, so all see the
same load of the shared machine; per round, ratio = torch step time / variant
step time. Prints one JSON line: median images/s and median ratio per variant.
"""

import argparse
import json
import os
import statistics
import sys
import time

import jax
from flax import jax_utils

sys.path.insert(0, os.path.dirname(__file__))
import probe_step  # pylint: disable=g-import-not-at-top
from dcgan_jax import gan_step  # pylint: disable=g-import-not-at-top

_FLAGS = {'ynn': {}, 'noynn': {'xla_cpu_experimental_ynn_fusion_type': ''},
          'notree': {'xla_cpu_experimental_ynn_fusion_type': '',
                     'xla_disable_hlo_passes': 'tree_reduction_rewriter'}}


def _option_value(text):
  """'true' / 'false' / '12' / other text as the bool / int / str XLA expects."""
  if text in ('true', 'false'):
    return text == 'true'
  return int(text) if text.lstrip('-').isdigit() else text


def make_variant(arch, impl, dtype, flags, batch_size, overrides=''):
  config = probe_step.arch_config(arch, batch_size, dtype, impl)
  for item in filter(None, overrides.split(',')):
    field, value = item.split('=')
    kind = type(config.model[field])
    config.model[field] = (value == 'true') if kind is bool else kind(value)
  g, d = gan_step.create_train_states(config, jax.random.PRNGKey(0),
                                      (config.image_size, config.image_size, 3))
  state = list(jax_utils.replicate((g, d)))
  key = jax_utils.replicate(jax.random.PRNGKey(1))
  batch = {'image': jax.random.uniform(
      jax.random.PRNGKey(2), (1, batch_size, config.image_size, config.image_size, 3),
      minval=-1, maxval=1)}
  p_step = gan_step.make_p_train_step(config)
  base, *extra = flags.split('+')  # e.g. noynn+xla_cpu_use_multi_output_fusion=false
  options = dict(_FLAGS[base], **{k: _option_value(v) for k, v in
                                  (item.split('=', 1) for item in extra)})
  compiled = p_step.lower(state[0], state[1], batch, key).compile(
      compiler_options=options or None)

  def step():
    state[0], state[1], m = compiled(state[0], state[1], batch, key)
    return jax.block_until_ready(m)
  return step


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--arch', default='dcgan64')
  p.add_argument('--variants', default='subpixel:float32:noynn,matmul:float32:ynn')
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--rounds', type=int, default=8)
  p.add_argument('--threads', type=int, default=2)
  args = p.parse_args()
  from experiments.torch_reference import step as tstep  # pylint: disable=g-import-not-at-top
  sep = ';' if ';' in args.variants or '=' in args.variants else ','
  variants = {v: make_variant(args.arch, *v.split(':')[:3], args.batch, *v.split(':')[3:])
              for v in args.variants.split(sep)}
  torch_step = tstep.TorchStep(args.arch, args.batch, threads=args.threads)
  for fn in [*variants.values(), torch_step, *variants.values(), torch_step]:
    fn()
  times = {name: [] for name in [*variants, 'torch']}
  for _ in range(args.rounds):
    for name, fn in [*variants.items(), ('torch', torch_step)]:
      t = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t)
  out = {'arch': args.arch, 'batch': args.batch, 'rounds': args.rounds,
         'load_avg_1m': round(os.getloadavg()[0], 1),
         'torch_img_s': round(args.batch / statistics.median(times['torch']), 1)}
  for name in variants:
    out[name] = {
        'img_s': round(args.batch / statistics.median(times[name]), 1),
        'ratio': round(statistics.median(
            t / j for t, j in zip(times['torch'], times[name])), 3)}
  print(json.dumps(out), flush=True)


if __name__ == '__main__':
  main()
