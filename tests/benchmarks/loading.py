"""What the benchmark smoke tests share: loading a benchmark script as a module."""

import importlib.util
import pathlib

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name):
  """benchmarks/<name>.py as a module (its `main(argv)` is what the tests run)."""
  spec = importlib.util.spec_from_file_location(name, BENCHMARKS / (name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def is_digest(value):
  """Whether `value` is a SHA-256 hex digest (`benchmarks.common.data_digest`)."""
  return isinstance(value, str) and len(value) == 64 and int(value, 16) >= 0
