"""The shape of the code base: short functions, one test naming convention, independent tests."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60


def _modules(folder):
  return sorted((ROOT / folder).rglob('*.py'))


def test_no_function_in_the_package_is_over_60_lines():
  long = []
  for path in _modules('dcgan_jax'):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES:
          long.append(f'{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)')
  assert not long, 'split these functions:\n' + '\n'.join(long)


def test_tests_follow_one_convention_and_import_no_other_test():
  for path in _modules('tests'):
    relative = path.relative_to(ROOT)
    if path.parent.name == 'support' or path.name in ('conftest.py', '__init__.py'):
      continue
    assert path.name.endswith('_test.py'), f'{relative}: name test modules <module>_test.py'
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
      for name in names:
        assert not name.endswith('_test'), f'{relative} imports the test module {name}'


def test_test_folders_mirror_the_package():
  package = {p.name for p in (ROOT / 'dcgan_jax').iterdir() if (p / '__init__.py').exists()}
  tests = {p.name for p in (ROOT / 'tests').iterdir() if (p / '__init__.py').exists()}
  # torch_reference is tested through the tests that compare against it.
  assert package - {'torch_reference'} <= tests, package - tests
