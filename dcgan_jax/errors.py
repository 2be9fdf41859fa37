"""The errors that mean "fix the input or the environment", not "a bug in dcgan_jax".

Every entry point (`main`, `generate`, the evaluation and analysis commands)
prints them as one line, without a traceback, and exits with their
`exit_code`: 2 for bad input (a config value, a flag, a data set, an image
set), 1 for an environment that failed the run (a full disk, a read-only
folder, a diverged run). Anything else is a bug and keeps its traceback.
"""

import errno
import logging
import os
import re


class UserError(Exception):
  """A problem the user fixes; the message names it and the fix."""
  exit_code = 2


class EnvironmentFailure(UserError):
  """The run could not go on because of its environment, not its input."""
  exit_code = 1


def one_line(error):
  """The error's message on one line, as entry points print it."""
  return ' '.join(str(error).split())


# What each failed write of the environment asks the user to do.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC: 'free space on that disk',
                       errno.EDQUOT: 'free space on that disk',
                       errno.EROFS: 'make that folder writable',
                       errno.EACCES: 'make that folder writable',
                       errno.EPERM: 'make that folder writable'}
# Tensorstore (orbax's array writes) reports a failed file write as a ValueError
# whose message ends with the OS error code, e.g. "[os_error_code='28']".
_OS_ERROR_CODE = re.compile(r"os_error_code='(\d+)'")


def environment_os_error(error):
  """The OSError of a full disk or a forbidden folder behind `error` (its causes too), or None.

  None means `error` is something else (a bug keeps its traceback).
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS:
      return error
    match = _OS_ERROR_CODE.search(str(error)) if isinstance(error, ValueError) else None
    if match and int(match.group(1)) in _ENVIRONMENT_ERRNOS:
      code = int(match.group(1))
      return OSError(code, os.strerror(code))
    error = error.__cause__ or error.__context__
  return None


def write_failure(os_error, what, where=None, error_class=EnvironmentFailure):
  """An `error_class` saying that `what` could not be written, why, and what to do."""
  where = where or os_error.filename
  place = f' in {where}' if where else ''
  return error_class(
      f'Cannot write {what}{place}: {os_error.strerror}. Checkpoints saved before are '
      f'intact; {_ENVIRONMENT_ERRNOS[os_error.errno]}, or point --workdir elsewhere, and run '
      'the same command to resume.')


class DropEnvironmentErrorLogs(logging.Filter):
  """Drops log records whose exception is a full disk or a forbidden folder.

  Libraries' worker threads (orbax's savers, clu's asynchronous writer) log such
  an error with its traceback before the main thread raises it; the entry
  point then reports it once, as one line (`write_failure`).
  """

  def filter(self, record):
    error = record.exc_info[1] if record.exc_info else None
    return error is None or environment_os_error(error) is None
