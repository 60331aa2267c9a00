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


def stepping_round(step, batches, steps):
  """A runner for `alternating_rounds`: `steps` calls of `step` over `batches`.

  Cycles through `batches`, then reads the last loss (`out["loss"]`) so the
  round ends when its work has run.
  """
  def run():
    for i in range(steps):
      out = step(batches[i % len(batches)])
    out["loss"].numpy()
  return run


def per_step(seconds, steps):
  """name -> list of seconds per round, divided into seconds per step."""
  return {name: [t / steps for t in ts] for name, ts in seconds.items()}


def history_batches(num_items, batch_size, history_len, seed, count=4,
                    extra=None):
  """`count` NumPy batches of a next-item task, ids uniform over [1, num_items].

  Each batch: `user` int64 [B] (1..B), `history` int64 [B, L] left-aligned
  with a uniform length in [1, L] and 0 as padding, `history_mask` bool
  [B, L], `target` int64 [B]; then `extra(rng, B)`'s entries (e.g. an
  auxiliary stream), drawn from the same generator after the target.
  """
  rng = np.random.default_rng(seed)
  batches = []
  for _ in range(count):
    b, l = batch_size, history_len
    lengths = rng.integers(1, l + 1, size=b)
    mask = np.arange(l)[None, :] < lengths[:, None]                 # [B, L]
    history = np.where(mask, rng.integers(1, num_items + 1, (b, l)), 0)
    batch = {"user": np.arange(1, b + 1, dtype=np.int64),
             "history": history.astype(np.int64),
             "history_mask": mask,
             "target": rng.integers(1, num_items + 1, b).astype(np.int64)}
    if extra is not None:
      batch.update(extra(rng, b))
    batches.append(batch)
  return batches


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
