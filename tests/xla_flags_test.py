"""The project's default XLA:CPU flags: added once, never over a user's choice."""

from dcgan_jax import xla_flags

FLAG = 'xla_cpu_experimental_ynn_fusion_type'


def test_defaults_are_appended_to_existing_flags():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  assert xla_flags.set_default_cpu_flags(environ=env) == {FLAG: ''}
  assert env['XLA_FLAGS'] == f'--xla_force_host_platform_device_count=2 --{FLAG}='
  # A second call adds nothing.
  assert xla_flags.set_default_cpu_flags(environ=env) == {}
  assert env['XLA_FLAGS'].count(FLAG) == 1


def test_a_users_value_wins():
  env = {'XLA_FLAGS': f'--{FLAG}=default'}
  assert xla_flags.set_default_cpu_flags(environ=env) == {}
  assert env['XLA_FLAGS'] == f'--{FLAG}=default'


def test_defaults_can_be_switched_off():
  env = {xla_flags.DISABLE_ENV: '1'}
  assert xla_flags.set_default_cpu_flags(environ=env) == {}
  assert 'XLA_FLAGS' not in env
  env = {}
  xla_flags.set_default_cpu_flags(environ=env)
  assert env['XLA_FLAGS'] == f'--{FLAG}='
