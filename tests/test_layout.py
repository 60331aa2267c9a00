"""The package layout keeps exportable towers apart from training-only parts.

What a tower imports (transitively, within dcg_tf) ends up in every export and
every serving process; training-only state (queues, momentum encoders,
samplers, prototypes), losses, models and the trainer must not be among it.
The registry is a leaf, and restoring a model imports only its own paper.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dcg_tf"
TRAINING_ONLY = ("dcg_tf.training_state", "dcg_tf.losses", "dcg_tf.models",
                 "dcg_tf.training", "dcg_tf.configs", "dcg_tf.optimizers")


def _module_name(path):
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _imports(path):
  """dcg_tf modules imported anywhere in `path` (top level or inside functions)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith("dcg_tf"))
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dcg_tf"):
      for alias in node.names:
        candidate = node.module + "." + alias.name
        found.add(candidate if _path_of(candidate) else node.module)
  return found


def _path_of(module):
  base = ROOT.joinpath(*module.split("."))
  for path in (base.with_suffix(".py"), base / "__init__.py"):
    if path.exists():
      return path
  return None


def _closure(module):
  """Every dcg_tf module `module` imports, transitively."""
  seen, todo = set(), [module]
  while todo:
    name = todo.pop()
    if name in seen or _path_of(name) is None:
      continue
    seen.add(name)
    todo.extend(_imports(_path_of(name)))
  return seen


def _modules_under(folder):
  return sorted(_module_name(p) for p in (PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("module", _modules_under("towers") + _modules_under("layers"))
def test_towers_and_layers_import_no_training_only_module(module):
  bad = sorted(m for m in _closure(module) if m.startswith(TRAINING_ONLY))
  assert not bad, "%s imports training-only modules %s" % (module, bad)


def test_the_import_walk_sees_a_planted_training_only_import(tmp_path, monkeypatch):
  # The check above must be able to fail: a fake tower importing a queue.
  fake = PACKAGE / "towers" / "_layout_probe_tower.py"
  fake.write_text("from dcg_tf.training_state.queue import FIFOQueue\n")
  try:
    assert "dcg_tf.training_state.queue" in _closure("dcg_tf.towers._layout_probe_tower")
  finally:
    fake.unlink()


def test_registry_is_a_leaf():
  assert _closure("dcg_tf.models.registry") == {"dcg_tf.models.registry"}


def test_no_module_named_like_the_binaries_folder():
  # `experiments/` holds the binaries; no package module shares the name.
  assert not list(PACKAGE.rglob("experiments")), list(PACKAGE.rglob("experiments"))
