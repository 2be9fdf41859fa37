"""What every command line of dcgan_jax shares: flag parsing and errors as one line.

`run(main)` is `absl.app.run` whose flag parsing turns a bad `--config` file
or override into one line (exit 2) instead of a traceback, and whose `main`
prints `errors.UserError`s the same way (exit 2 for bad input, 1 for a failed
environment). Anything else is a bug and keeps its traceback.
"""

import logging
import signal
import sys

from absl import app
from absl import flags

from dcgan_jax import errors


def _config_flag_message(error, argv):
  """The one-line message for an error raised while parsing --config and its overrides."""
  path = _config_path(argv)
  if isinstance(error, SyntaxError):
    return (f'--config: the config file {path} has a syntax error at line {error.lineno}: '
            f'{error.msg}.')
  if isinstance(error, OSError):
    return (f'--config: cannot read the config file {path!r} (no such file, or not readable); '
            'pass the path of a config file such as configs/quickstart.py.')
  text = errors.one_line(error).strip('"\'')
  if 'get_config' in text:
    return f'--config: {path} defines no get_config() returning the config.'
  overrides = [a.split('=', 1)[0] for a in argv if a.startswith('--config.')]
  field = next((o for o in overrides if o.rsplit('.', 1)[-1] in text), None)
  if field:
    return (f'{field}: the config has no such field, or the value does not fit its type '
            f'({text}); configs/default.py lists every field with its type.')
  return f'--config: {text}'


def _config_path(argv):
  """The config file the flag names (argv may spell it '--config=PATH' or '--config PATH')."""
  try:
    return flags.FLAGS['config'].config_filename
  except Exception:  # pylint: disable=broad-except  (not parsed: read it from argv)
    for i, arg in enumerate(argv):
      if arg.startswith('--config='):
        return arg.partition('=')[2]
      if arg == '--config' and i + 1 < len(argv):
        return argv[i + 1]
    return '(none)'


def parse_flags(argv):
  """absl's flag parsing; errors in flags or config files exit 2 with one line."""
  try:
    argv = flags.FLAGS(argv)
    if 'config' in flags.FLAGS:
      list(flags.FLAGS['config'].value.keys())  # Loads the config file now, not lazily.
    return argv
  except flags.Error as e:
    _exit(f'{errors.one_line(e)} (see --help)', 2)
  except (OSError, SyntaxError, AttributeError, KeyError, TypeError, ValueError) as e:
    _exit(_config_flag_message(e, argv), 2)


def _exit(message, code):
  print(f'Error: {message}', file=sys.stderr, flush=True)
  sys.exit(code)


def run(main):
  """app.run(main) with one-line errors for bad flags, configs and `errors.UserError`s."""

  def main_with_errors(argv):
    logging.getLogger('absl').addFilter(errors.DropEnvironmentErrorLogs())
    try:
      return main(argv)
    except errors.UserError as e:
      # One line, no traceback: these say what to change, and a traceback would bury it.
      _exit(errors.one_line(e), e.exit_code)
    except Exception as e:  # pylint: disable=broad-except  (re-raised unless a full disk etc.)
      os_error = errors.environment_os_error(e)
      if os_error is None:
        raise
      _exit(errors.one_line(errors.write_failure(os_error, 'an output of the run')), 1)

  app.run(main_with_errors, flags_parser=parse_flags)


STOPPED_OUTSIDE_TRAINING = 143  # 128 + SIGTERM, as preemption.EXIT_STOPPED.


def stopped_outside_training(signum, frame):
  """SIGTERM before the training loop takes signals over (start-up): say so and exit."""
  del frame
  print(f'Stopped by {signal.Signals(signum).name} outside the training loop (start-up or '
        'shut-down): no training step was lost; run the same command to go on.',
        file=sys.stderr, flush=True)
  sys.exit(STOPPED_OUTSIDE_TRAINING)
