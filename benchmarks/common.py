"""Scaffolding the benchmarks share: flags, side-by-side timing, JSON output.

Every benchmark compares two or more setups in one process and reports their
ratio. `alternating_rounds` times them in alternating rounds, so that other load
on a shared machine hits all setups alike, and records both wall and process
CPU seconds per round (CPU time is far less sensitive to other jobs).
"""

import argparse
import hashlib
import json
import time

import numpy as np


def make_parser(doc, rounds=None, steps_per_round=None):
  """An `ArgumentParser` with the flags every benchmark has.

  `--seed`, `--output` (optional JSON file of results) and `--quick` (tiny
  sizes, for the smoke tests of tests/benchmarks); with `rounds` and
  `steps_per_round`, also `--rounds` / `--steps_per_round` with those defaults.
  """
  parser = argparse.ArgumentParser(description=doc.strip().split("\n")[0])
  if rounds is not None:
    parser.add_argument("--rounds", type=int, default=rounds)
  if steps_per_round is not None:
    parser.add_argument("--steps_per_round", type=int, default=steps_per_round)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", default="", help="optional JSON file of results")
  parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
  return parser


def parse(parser, argv, quick):
  """Parses `argv`; with `--quick`, overrides the arguments in dict `quick`."""
  args = parser.parse_args(argv)
  if args.quick:
    for name, value in quick.items():
      setattr(args, name, value)
  return args


def alternating_rounds(runners, rounds):
  """Times `runners` (name -> callable running one round) in alternating rounds.

  Returns:
    (wall, cpu): dicts name -> list of seconds per round.
  """
  wall = {name: [] for name in runners}
  cpu = {name: [] for name in runners}
  for _ in range(rounds):
    for name, run in runners.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      run()
      wall[name].append(time.perf_counter() - start)
      cpu[name].append(time.process_time() - start_cpu)
  return wall, cpu


def median(seconds):
  """name -> median of its list of seconds."""
  return {name: float(np.median(s)) for name, s in seconds.items()}


def write_json(path, summary):
  """Writes `summary` to `path` when a path is given."""
  if path:
    with open(path, "w") as f:
      json.dump(summary, f, indent=2)


def data_digest(batches):
  """SHA-256 (hex) of a list of batches: dicts, tuples or single arrays.

  Covers every array's dtype, shape and bytes in order (dict keys sorted), so
  two contestants that report the same digest were fed the same data.
  """
  sha = hashlib.sha256()

  def add(value):
    if isinstance(value, dict):
      for key in sorted(value):
        sha.update(str(key).encode())
        add(value[key])
    elif isinstance(value, (list, tuple)):
      for item in value:
        add(item)
    else:
      array = np.asarray(value)
      sha.update(("%s%s" % (array.dtype.str, array.shape)).encode())
      sha.update(np.ascontiguousarray(array).tobytes())

  add(batches)
  return sha.hexdigest()
