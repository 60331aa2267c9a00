"""Test setup: Keras 2 before TensorFlow, quiet logs, shared-data location."""

import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (selects Keras 2 before tensorflow)
import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(
    os.environ.get("DCG_SHARED_DATA",
                   pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def shared_data():
  """Path to ../shared/data; skips the test cleanly when it is absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip("../shared/data is not present")
  return SHARED_DATA
