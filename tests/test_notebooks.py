"""The notebooks in docs/notebooks run as written, in a real Jupyter kernel.

Each notebook is executed top to bottom with nbclient (a fresh ipykernel, the
repository root as working folder), so a notebook that no longer runs fails
the build. Notebooks are committed without outputs.
"""

import os
import pathlib

import nbclient   # the test extra (setup.py); missing, the build must fail
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert [p.name for p in NOTEBOOKS] == ["micrec.ipynb", "pcl_aisl.ipynb",
                                          "quickstart.ipynb", "ssl_cfm.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
  notebook = nbformat.read(str(path), as_version=4)
  nbformat.validate(notebook)
  for number, cell in enumerate(notebook.cells):
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, (
          "%s cell %d has outputs: clear them before committing "
          "(jupyter nbconvert --clear-output --inplace %s)" % (path.name, number, path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
  # The kernel inherits this environment: quiet TensorFlow, this checkout's dcg_tf.
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  notebook = nbformat.read(str(path), as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": str(ROOT)}})
  client.execute()   # raises CellExecutionError with the cell and its traceback
  errors = [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs if output.output_type == "error"]
  assert not errors
