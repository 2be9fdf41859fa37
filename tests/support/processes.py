"""Waiting on a subprocess's log lines: events, not sleeps."""

import re
import threading


class StderrWatcher:
  """Reads a Popen's stderr (text mode) on a thread; `wait_for` blocks until a line matches.

  The wait is on a threading.Event set by the reader the moment the line arrives,
  with a generous timeout for a loaded machine: nothing depends on how fast it is.
  """

  def __init__(self, process):
    self.process = process
    self.lines = []
    self._patterns = []  # (compiled pattern, threading.Event)
    self._lock = threading.Lock()
    self._thread = threading.Thread(target=self._read, daemon=True)
    self._thread.start()

  def _read(self):
    for line in self.process.stderr:
      with self._lock:
        self.lines.append(line)
        for pattern, event in self._patterns:
          if pattern.search(line):
            event.set()

  def wait_for(self, pattern, timeout=300):
    """True once a line matching `pattern` has been written (False: timeout or exit first)."""
    event = threading.Event()
    with self._lock:
      self._patterns.append((re.compile(pattern), event))
      if any(re.search(pattern, line) for line in self.lines):
        event.set()
    return event.wait(timeout) or event.is_set()

  def finish(self, timeout=400):
    """(returncode, all of stderr) once the process has exited."""
    self.process.wait(timeout=timeout)
    self._thread.join(timeout=timeout)
    return self.process.returncode, ''.join(self.lines)
