"""Timing of whole training runs: the steady loop against the bare step, and a run's timeline.

`benchmark.py --mode=loop` and `--mode=timeline` (see its docstring). Both train
`train.train_and_evaluate` in a temporary workdir with a hook that clocks the
end of device calls; `time_to_quality.py` times whole runs against PyTorch.
"""

import statistics
import tempfile
import time

from dcgan_jax.training import train


def _clocked_run(config, steps=None):
  """(start, {step: perf_counter at the end of its call}, end) of one run in a fresh workdir.

  Only the calls ending on `steps` are clocked when given (None: every call).
  """
  times = {}

  def clock(step):
    if steps is None or step in steps:
      times[step] = time.perf_counter()

  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir, hooks=(clock,))
    end = time.perf_counter()
  return start, times, end


def loop_rate(config, steps):
  """Images/s of the steady training loop, timed inside one `train_and_evaluate`.

  The clock runs from the second log step (compilation and the input
  pipeline's start-up are behind it) to the log step before the last (the
  final sample grid and checkpoint come after it), over at least `steps`
  steps. At log steps the loop has fetched that step's metrics, so the devices
  are done with it: the interval is exact, whatever runs asynchronously.
  """
  every = config.log_every_steps
  first, last = 2 * every, 2 * every + -(-steps // every) * every
  config = config.copy_and_resolve_references()
  config.num_train_steps = last + every
  config.sample_every_steps = config.checkpoint_every_steps = config.num_train_steps
  _, times, _ = _clocked_run(config, steps=(first, last))
  return config.batch_size * config.num_seeds * (last - first) / (times[last] - times[first])


def benchmark_loop(config, steps, time_bare_step):
  """The training loop's images/s against the bare step's, back to back: the host overhead.

  `time_bare_step(config, num_steps)` (benchmark.py's `benchmark_train`, with
  its repeats; passed in, as that module is the command's `__main__`) times the
  bare step for up to 200 steps before and after one training run timed over
  `steps` steady steps (`loop_rate`: input pipeline, dispatch, metrics, logs;
  no evaluation), and the loop is compared with the mean of the two.
  """
  config = config.copy_and_resolve_references()
  config.eval_num_samples = 0
  bare_steps = max(1, min(steps, 200) // config.get('steps_per_call', 1))
  before = time_bare_step(config, bare_steps)
  rate = loop_rate(config, steps)
  after = time_bare_step(config, bare_steps)
  bare_rate = (before['images_per_sec'] + after['images_per_sec']) / 2
  return {**before, 'mode': 'loop', 'images_per_sec': round(bare_rate, 2),
          'bare_images_per_sec_before_after': [before['images_per_sec'],
                                               after['images_per_sec']],
          'loop_images_per_sec': round(rate, 2), 'loop_steps_timed': steps,
          'host_overhead_share': round(1.0 - rate / bare_rate, 3)}


def benchmark_timeline(config):
  """Where one whole run's wall time goes: start-up, the steady calls, evaluations, the end.

  Trains the config as given (evaluations, samples and checkpoints included).
  """
  start, times, end = _clocked_run(config)
  steps = sorted(times)
  calls = {step: times[step] - times[before] for before, step in zip(steps, steps[1:])}
  every = config.eval_every_steps
  evals = [s for s in steps[1:] if config.eval_num_samples > 0 and (
      s == steps[-1] or (every and s % every == 0))]
  return {'mode': 'timeline', 'num_train_steps': config.num_train_steps,
          'steps_per_call': config.get('steps_per_call', 1),
          'to_first_call_s': round(times[steps[0]] - start, 3),
          'second_call_s': round(calls[steps[1]], 3) if len(steps) > 1 else None,
          'median_call_ms': round(1e3 * statistics.median(calls.values()), 3) if calls else None,
          'eval_calls_s': {str(s): round(calls[s], 3) for s in evals},
          'after_last_call_s': round(end - times[steps[-1]], 3),
          'total_s': round(end - start, 3)}
