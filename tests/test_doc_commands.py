"""The commands of README.md and docs/**/*.md run as they are written.

The fenced blocks are extracted from the Markdown itself (no copy of them
lives here):
- ```sh / ```bash blocks and ```python blocks of each document are run in
  order in one bash script with `set -e` (a python block through
  `.venv/bin/python -`), README.md first, then docs/ in path order, all in one
  temporary folder that holds a `.venv` link to this venv (its `bin/` first on
  PATH, so `python` is the venv's, as once activated): later documents
  use the README's `data/`, `model/` and `export/`, as their text says. The
  environment has `DCG_TF_TINY=1`, which the docs mention: the generator then
  writes a tiny dataset and every command takes seconds.
- A block preceded by `<!-- doc-test: skip (reason) -->` is not run (it needs
  ../shared/data, a server, or hours); each is reported as a skipped test
  with its reason.
- ```json blocks are request bodies, checked by
  tests/serving/test_serving_doc.py. Other blocks (untagged, ```text) are
  layouts or outputs: one that holds a command must be tagged ```sh.

Every `python -m experiments.X` / `benchmarks.X` command written anywhere in
the docs (skipped blocks, indented blocks and inline code included) must name
a module that exists and only flags that module defines.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!--\s*doc-test:\s*skip\s*\((.+?)\)\s*-->")
SHELL, PYTHON = ("sh", "bash", "shell"), ("python",)
# A line that runs one of the repository's binaries or the venv's python.
COMMAND = re.compile(r"^\s*(?:\$PY|python3?|\.venv/bin/\S+|\S*TF_CPP\S*=\S+\s+\S*python)\b")
# Flags every absl binary has.
ABSL_FLAGS = {"flagfile", "undefok", "helpfull", "help", "helpshort", "helpxml",
              "verbosity", "v", "logtostderr", "alsologtostderr", "log_dir",
              "stderrthreshold", "only_check_args", "pdb", "pdb_post_mortem",
              "run_with_pdb", "run_with_profiling", "use_cprofile_for_profiling",
              "showprefixforinfo"}


def doc_files():
  return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


class Block:
  """A fenced block: its document, first line, language, text, skip reason."""

  def __init__(self, path, line, lang, text, skip):
    self.path, self.line, self.lang, self.text, self.skip = (
        path, line, lang, text, skip)

  @property
  def where(self):
    return "%s:%d" % (self.path.relative_to(ROOT), self.line)


def fenced_blocks(path):
  """Every ``` block of `path` (not indented ones), in document order."""
  lines = path.read_text().splitlines()
  blocks, number = [], 0
  while number < len(lines):
    opening = re.match(r"^```(\S*)\s*$", lines[number])
    if not opening:
      number += 1
      continue
    end = number + 1
    while end < len(lines) and not lines[end].startswith("```"):
      end += 1
    before = number - 1
    while before >= 0 and not lines[before].strip():
      before -= 1
    marker = SKIP.search(lines[before]) if before >= 0 else None
    if before >= 0 and "doc-test" in lines[before] and not marker:
      raise AssertionError("%s:%d: a doc-test marker is written "
                           "<!-- doc-test: skip (reason) -->" % (path, before + 1))
    blocks.append(Block(path, number + 1, opening.group(1).lower(),
                        "\n".join(lines[number + 1:end]) + "\n",
                        marker.group(1) if marker else None))
    number = end + 1
  return blocks


def all_blocks():
  return [block for path in doc_files() for block in fenced_blocks(path)]


def runnable(block):
  return block.lang in SHELL + PYTHON and block.skip is None


def script(path):
  """The bash script of `path`'s runnable blocks (None when it has none)."""
  parts = []
  for block in fenced_blocks(path):
    if not runnable(block):
      continue
    parts.append("echo '=== doc-test: %s' >&2" % block.where)
    if block.lang in PYTHON:
      parts.append("DCG_TF_DOC_PY=.venv/bin/python\n"
                   "\"$DCG_TF_DOC_PY\" - <<'DCG_TF_DOC_PYTHON'\n%sDCG_TF_DOC_PYTHON"
                   % block.text)
    else:
      parts.append(block.text)
  if not parts:
    return None
  return "set -e -o pipefail\n" + "\n".join(parts) + "\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("doc_commands")
  (folder / ".venv").symlink_to(pathlib.Path(sys.prefix))
  return folder


def _run(text, folder):
  env = dict(os.environ, DCG_TF_TINY="1", TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                      os.environ.get("PYTHONPATH")])))
  env.pop("TF_USE_LEGACY_KERAS", None)   # the docs do not ask the user to set it
  # `python` in the docs is the venv's, as after `source .venv/bin/activate`.
  env["PATH"] = os.pathsep.join([str(folder / ".venv" / "bin"), env.get("PATH", "")])
  return subprocess.run(["bash", "-c", text], cwd=str(folder), env=env,
                        capture_output=True, text=True, timeout=900, check=False)


DOCS_TO_RUN = [path for path in doc_files() if script(path)]


def test_the_readme_and_some_docs_have_commands_to_run():
  names = [str(p.relative_to(ROOT)) for p in DOCS_TO_RUN]
  assert names[0] == "README.md" and "docs/serving.md" in names, names


@pytest.mark.parametrize("path", DOCS_TO_RUN,
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_document_commands_run(path, workdir):
  # README.md is first: the later documents use the folders its verbs write.
  result = _run(script(path), workdir)
  assert result.returncode == 0, (
      "a command of %s failed (the last '=== doc-test' line names its block):\n"
      "%s\n%s" % (path.relative_to(ROOT), result.stdout[-3000:],
                  result.stderr[-5000:]))


@pytest.mark.parametrize(
    "block", [b for b in all_blocks() if b.skip is not None],
    ids=lambda b: b.where)
def test_skipped_block(block):
  assert block.lang in SHELL + PYTHON, (
      "%s: only sh/python blocks can be marked doc-test: skip" % block.where)
  pytest.skip("%s: %s" % (block.where, block.skip))


def test_every_command_block_is_tagged():
  untagged = [b.where for b in all_blocks()
              if b.lang not in SHELL + PYTHON + ("json",)
              and any(COMMAND.match(line) for line in b.text.splitlines())]
  assert not untagged, ("blocks holding commands must be tagged ```sh (and run "
                        "or be marked <!-- doc-test: skip (reason) -->): %s"
                        % untagged)


# --- every written command names an existing binary and its flags -----------

INVOCATION = re.compile(r"(?:-m\s+((?:experiments|benchmarks)\.\w+)"
                        r"|(?<![\w/])(benchmarks/\w+\.py))((?:[ \t]+[^\s`|;&)]+)*)")
DEFINED = re.compile(r"""(?:DEFINE_\w+\(\s*|add_argument\(\s*)["'](?:--)?([\w-]+)["']""")


def _defined_flags(module_file):
  text = module_file.read_text()
  names = set(DEFINED.findall(text))
  if "from benchmarks import common" in text:
    names |= set(DEFINED.findall((ROOT / "benchmarks" / "common.py").read_text()))
  return {name.replace("-", "_") for name in names}


def written_commands():
  """(where, module path, [flag names]) of every command in the docs."""
  found = []
  for path in doc_files():
    # Continuation lines joined, so a command's flags are on one line.
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for number, line in enumerate(text.splitlines(), 1):
      for match in INVOCATION.finditer(line):
        module = match.group(1) or match.group(2)[:-3].replace("/", ".")
        flags = re.findall(r"(?:^|\s)--([A-Za-z_][\w-]*)", match.group(3))
        found.append(("%s:~%d" % (path.relative_to(ROOT), number), module, flags))
  return found


def test_written_commands_name_real_binaries_and_flags():
  commands = written_commands()
  assert len(commands) > 20, "the command pattern finds too little"
  wrong = []
  for where, module, flags in commands:
    module_file = ROOT / (module.replace(".", "/") + ".py")
    if not module_file.exists():
      wrong.append("%s: no module %s" % (where, module))
      continue
    defined = _defined_flags(module_file) | ABSL_FLAGS
    for flag in flags:
      name = flag.replace("-", "_")
      if name not in defined and not (name.startswith("no") and name[2:] in defined):
        wrong.append("%s: %s has no flag --%s" % (where, module, flag))
  assert not wrong, "commands in the docs that do not match the code:\n" + "\n".join(
      wrong)
