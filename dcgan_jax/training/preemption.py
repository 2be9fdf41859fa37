"""Graceful stops: SIGTERM/SIGINT end a run after the current step, with a checkpoint.

  with preemption.StopSignals() as stop:
    for step in ...:
      train one step
      if stop.should_stop(step):
        save a checkpoint, flush the logs, break

The first SIGTERM or SIGINT only sets a flag, so the loop finishes the step it
is in, saves and exits cleanly (cloud schedulers send SIGTERM some seconds to
minutes before they kill a VM). A second signal stops the process at once.

With several processes every one must stop at the same step, or the others
wait forever in the next collective. There JAX's preemption sync manager
(started by `jax.distributed.initialize`) catches SIGTERM in C++ and
`multihost_utils.reached_preemption_sync_point(step)` turns true at the same
step everywhere, so SIGTERM is left to it; a local SIGINT is shared with the
other processes at the steps where the caller can afford a collective
(`sync=True`, e.g. the log steps, which fetch metrics anyway).
"""

import os
import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

# Exit status of a run stopped by a signal before its last step (that of a
# process ended by SIGTERM): job runners then know it did not finish.
EXIT_STOPPED = 128 + signal.SIGTERM


class StopSignals:
  """Context manager turning SIGTERM/SIGINT into a `should_stop` flag."""

  def __init__(self):
    self._received = None  # Name of the first signal, once one arrived.
    self._previous = {}
    self._sync_manager = True  # Until JAX says it has none.

  def _signals(self):
    if jax.process_count() > 1:
      # SIGTERM belongs to JAX's preemption notifier there (see module docstring).
      return (signal.SIGINT,)
    return (signal.SIGTERM, signal.SIGINT)

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      logging.warning('Not in the main thread: SIGTERM/SIGINT are not turned into clean stops.')
      return self
    for signum in self._signals():
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
    return False

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self._received is None:
      self._received = name
      logging.warning('%s received: stopping after the current step with a checkpoint '
                      '(send it again to stop at once).', name)
      return
    logging.warning('Second %s: stopping now, without a checkpoint.', name)
    # The default action of both signals ends the process, with the usual exit status.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)

  def _reached_sync_point(self, step):
    try:
      return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError as e:
      # No jax.distributed.initialize() (hence no sync manager): signals only.
      logging.warning('No preemption sync point (%s); stopping on signals only.', e)
      self._sync_manager = False
      return False

  @property
  def received(self):
    """The name of the signal that asked for the stop ('SIGTERM', ...), or None."""
    return self._received

  def should_stop(self, step, sync=False):
    """Whether the loop should save and stop after `step`.

    Args:
      step: the step just finished (the same on every process).
      sync: with several processes, also agree on local signals (a collective;
        call it with the same `sync` on every process).
    """
    if jax.process_count() == 1:
      return self._received is not None
    if self._sync_manager and self._reached_sync_point(step):
      self._received = self._received or 'preemption notice'
      return True
    if sync:
      flags = multihost_utils.process_allgather(np.int32(self._received is not None))
      if np.any(flags):
        self._received = self._received or 'a signal to another process'
        return True
    return False
