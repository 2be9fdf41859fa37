"""Where the time of a JAX train step goes: per-HLO-op totals from a jax.profiler trace.

  python experiments/speed/probe_profile.py --arch=dcgan64 --impl=matmul [--dtype=bfloat16]

Runs a few steps under jax.profiler.trace, reads the .xplane.pb back with
jax.profiler.ProfileData and prints the ops taking the most wall time (events
on XLA's CPU threads, summed; nested events are counted at every level).
"""

import argparse
import collections
import glob
import os
import sys
import tempfile

import jax

sys.path.insert(0, os.path.dirname(__file__))
import probe_step  # pylint: disable=g-import-not-at-top


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--arch', default='dcgan64')
  p.add_argument('--impl', default='matmul')
  p.add_argument('--dtype', default='float32')
  p.add_argument('--steps', type=int, default=3)
  p.add_argument('--top', type=int, default=40)
  args = p.parse_args()
  config = probe_step.arch_config(args.arch, 64, args.dtype, args.impl)
  step, _ = probe_step.make_jax_step(config)
  jax.block_until_ready(step())
  logdir = tempfile.mkdtemp()
  with jax.profiler.trace(logdir):
    for _ in range(args.steps):
      m = step()
    jax.block_until_ready(m)
  (path,) = glob.glob(f'{logdir}/**/*.xplane.pb', recursive=True)
  from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top
  data = ProfileData.from_file(path)
  totals = collections.Counter()
  counts = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      for ev in line.events:
        totals[(plane.name, line.name, ev.name)] += ev.duration_ns
        counts[(plane.name, line.name, ev.name)] += 1
  by_line = collections.Counter()
  for (pl, ln, _), t in totals.items():
    by_line[(pl, ln)] += t
  for (pl, ln), t in by_line.most_common(12):
    print(f'{t / 1e6 / args.steps:9.1f} ms/step  {pl} | {ln}')
  print()
  # Ops by kind (the name without its .N suffix), summed over XLA's threads
  # (client threads run ops too; convolutions shard themselves onto the Eigen
  # pool without events of their own, so their event is the op's wall time).
  kinds, kind_counts = collections.Counter(), collections.Counter()
  for (pl, ln, name), t in totals.items():
    if ('XLAEigen' in ln or 'XLAPjRtCpuClient' in ln) and not name.startswith('ThunkExecutor'):
      kinds[name.split('.')[0]] += t
      kind_counts[name.split('.')[0]] += counts[(pl, ln, name)]
  total = sum(kinds.values())
  for kind, t in kinds.most_common(25):
    print(f'{t / 1e6 / args.steps:9.1f} ms/step {100 * t / total:5.1f}%  '
          f'x{kind_counts[kind] // args.steps:4d}  {kind}')
  print()
  for (pl, ln, name), t in totals.most_common(args.top):
    print(f'{t / 1e6 / args.steps:9.1f} ms/step x{counts[(pl, ln, name)] // args.steps:3d}  '
          f'{ln[:20]:20s} {name[:110]}')


if __name__ == '__main__':
  main()
