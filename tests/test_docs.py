"""The docs name only what exists.

Every dotted `dcg_tf.` name written in README.md and docs/**/*.md (code
blocks included) must resolve: its longest importable module prefix is
imported and the rest looked up with getattr. Names whose last part is a file
extension (`dcg_tf.py`-like paths) are paths, not names. Every path into
the repository's code written there (`dcg_tf/...`, `tests/...`,
`experiments/...`, `benchmarks/...`, with `{a,b}` alternatives expanded) must
exist.
"""

import importlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = re.compile(r"(?<![\w./])dcg_tf(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])(?:dcg_tf|tests|experiments|benchmarks)/"
                  r"[\w./]*(?:\{[\w,]+\}[\w./]*)*")
BRACES = re.compile(r"\{([\w,]+)\}")
EXTENSIONS = {"py", "md", "txt", "json", "cfg", "npz", "npy", "sh", "yaml",
              "tfrecord", "csv"}


def _doc_files():
  return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def _written(pattern):
  """{text: [file:line, ...]} of every match of `pattern` in the docs."""
  found = {}
  for path in _doc_files():
    for number, line in enumerate(path.read_text().splitlines(), 1):
      for match in pattern.finditer(line):
        found.setdefault(match.group(0), []).append(
            "%s:%d" % (path.relative_to(ROOT), number))
  return found


def resolves(name):
  """True when `name` is an importable module or an attribute chain of one."""
  parts = name.split(".")
  for split in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:split]))
    except ImportError:
      continue
    try:
      for attribute in parts[split:]:
        obj = getattr(obj, attribute)
    except AttributeError:
      return False
    return True
  return False


def test_resolves_names_and_rejects_stale_ones():
  assert resolves("dcg_tf.models.registry.build_model")
  assert resolves("dcg_tf.Retriever")
  assert not resolves("dcg_tf.data.catalog.ItemCatalog")
  assert not resolves("dcg_tf.models.base.RetrievalModel.no_such_method")


def test_every_dcg_tf_name_in_the_docs_resolves():
  names = {name: where for name, where in _written(NAME).items()
           if name.rsplit(".", 1)[-1] not in EXTENSIONS}
  assert names, "no dcg_tf. name found in the docs: is the pattern right?"
  unresolved = ["%s (%s)" % (name, ", ".join(where))
                for name, where in sorted(names.items()) if not resolves(name)]
  assert not unresolved, "names in the docs that do not exist:\n" + "\n".join(
      unresolved)


def _expand(path):
  """`a/{b,c}.py` -> [`a/b.py`, `a/c.py`]."""
  match = BRACES.search(path)
  if not match:
    return [path]
  return [expanded for choice in match.group(1).split(",")
          for expanded in _expand(path[:match.start()] + choice
                                  + path[match.end():])]


def test_every_code_path_in_the_docs_exists():
  missing = ["%s (%s)" % (path, ", ".join(where))
             for written, where in sorted(_written(PATH).items())
             for path in _expand(written)
             if not (ROOT / path.rstrip(".")).exists()]
  assert not missing, "paths in the docs that do not exist:\n" + "\n".join(
      missing)
