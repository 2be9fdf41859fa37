"""The errors that mean "fix the input or the environment", not "a bug in dcgan_jax".

Every entry point (`main`, `generate`, the evaluation and analysis commands)
prints them as one line, without a traceback, and exits with their
`exit_code`: 2 for bad input (a config value, a flag, a data set, an image
set), 1 for an environment that failed the run (a full disk, a read-only
folder, a diverged run). Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A problem the user fixes; the message names it and the fix."""
  exit_code = 2


class EnvironmentFailure(UserError):
  """The run could not go on because of its environment, not its input."""
  exit_code = 1


def one_line(error):
  """The error's message on one line, as entry points print it."""
  return ' '.join(str(error).split())
