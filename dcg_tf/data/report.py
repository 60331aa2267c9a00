"""Accounting of every input row: read, kept, or dropped for a named reason.

The issue's bad-input contract: malformed lines, missing fields, non-UTF-8
bytes, unknown ids, duplicates and short users are never silent. Every loader
counts each line it reads into a `DropReport`, per input file, as kept or as
dropped for a reason with the first few line numbers; `check()` enforces
`kept + dropped == read` for every file and `check_bad_fraction()` stops a run
whose bad-line fraction exceeds `--max_bad_fraction`, naming the file.
"""

import collections

import numpy as np

from dcg_tf.errors import InputError

# Line numbers kept per (file, reason) for the manifest and error messages.
MAX_EXAMPLE_LINES = 5

# Reasons that are counted but are not bad input (they do not count towards
# --max_bad_fraction): e.g. metadata of items nobody reviewed, events a
# --min_rating threshold leaves out.
INFORMATIONAL_REASONS = frozenset({"item_not_in_interactions",
                                   "user_not_in_interactions",
                                   "below_min_rating", "no_rating"})


class BadInputError(InputError):
  """Input data that cannot be used; the message names the file."""


class FileStats:
  """Counters of one input file (or one processing stage)."""

  def __init__(self, path):
    self.path = str(path)
    self.read = 0
    self.kept = 0
    self.dropped = collections.OrderedDict()   # reason -> count
    self.lines = collections.OrderedDict()     # reason -> first line numbers

  @property
  def num_dropped(self):
    return sum(self.dropped.values())

  def to_dict(self):
    return {"path": self.path, "read": self.read, "kept": self.kept,
            "dropped": dict(self.dropped),
            "first_lines": {k: list(v) for k, v in self.lines.items()}}


class DropReport:
  """Rows read, kept and dropped by reason, per input file.

  Line numbers are 1-based line numbers in the file (for a file with a header,
  the header is line 1 and the first record is line 2).

  Example:
    >>> report = DropReport()
    >>> report.add_read("r.json", 10)
    >>> report.add_dropped("r.json", "malformed_json", [3])
    >>> report.add_kept("r.json", 9)
    >>> report.check()
  """

  def __init__(self):
    self.files = collections.OrderedDict()   # path -> FileStats

  def _stats(self, path):
    path = str(path)
    if path not in self.files:
      self.files[path] = FileStats(path)
    return self.files[path]

  def add_read(self, path, count):
    self._stats(path).read += int(count)

  def add_kept(self, path, count):
    self._stats(path).kept += int(count)

  def add_dropped(self, path, reason, line_numbers, count=None):
    """Counts dropped rows of `path` for `reason`.

    Args:
      path: input file.
      reason: short snake_case reason, e.g. "malformed_json".
      line_numbers: 1-based line numbers of the dropped rows (array-like); the
        first `MAX_EXAMPLE_LINES` are kept for the manifest.
      count: number of dropped rows when `line_numbers` is only a sample
        (defaults to len(line_numbers)).
    """
    line_numbers = np.asarray(line_numbers, dtype=np.int64).ravel()
    count = line_numbers.size if count is None else int(count)
    if count == 0:
      return
    stats = self._stats(path)
    stats.dropped[reason] = stats.dropped.get(reason, 0) + count
    lines = stats.lines.setdefault(reason, [])
    room = MAX_EXAMPLE_LINES - len(lines)
    if room > 0:
      lines.extend(int(x) for x in np.sort(line_numbers)[:room])

  def move_kept_to_dropped(self, path, reason, line_numbers, count=None):
    """Re-labels rows counted as kept (e.g. duplicates found later) as dropped."""
    line_numbers = np.asarray(line_numbers, dtype=np.int64).ravel()
    count = line_numbers.size if count is None else int(count)
    self._stats(path).kept -= count
    self.add_dropped(path, reason, line_numbers, count)

  @property
  def total_read(self):
    return sum(s.read for s in self.files.values())

  @property
  def total_kept(self):
    return sum(s.kept for s in self.files.values())

  @property
  def total_dropped(self):
    return sum(s.num_dropped for s in self.files.values())

  def check(self):
    """Raises AssertionError if `kept + dropped != read` for some file."""
    for stats in self.files.values():
      if stats.kept + stats.num_dropped != stats.read:
        raise AssertionError(
            "%s: kept (%d) + dropped (%d) != read (%d)"
            % (stats.path, stats.kept, stats.num_dropped, stats.read))

  def check_bad_fraction(self, max_bad_fraction):
    """Raises BadInputError naming the first file whose dropped fraction is too high.

    Reasons in INFORMATIONAL_REASONS do not count as bad. Also raises when a
    file had rows but none was kept, and when a file is empty.
    """
    for stats in self.files.values():
      if stats.read == 0:
        raise BadInputError("%s: the file is empty" % stats.path)
      bad = sum(c for r, c in stats.dropped.items()
                if r not in INFORMATIONAL_REASONS)
      fraction = bad / stats.read
      if stats.kept == 0:
        raise BadInputError("%s: no usable rows (%d read, dropped: %s)"
                            % (stats.path, stats.read, self._reasons(stats)))
      if fraction > max_bad_fraction:
        raise BadInputError(
            "%s: %.2f%% of %d rows are bad, above --max_bad_fraction=%g "
            "(dropped: %s)" % (stats.path, 100 * fraction, stats.read,
                               max_bad_fraction, self._reasons(stats)))

  @staticmethod
  def _reasons(stats):
    return ", ".join("%s=%d (lines %s)" % (r, c, stats.lines.get(r, []))
                     for r, c in stats.dropped.items()) or "none"

  def summary(self):
    """Human-readable summary, one block per file."""
    out = []
    for stats in self.files.values():
      out.append("%s: read %d, kept %d, dropped %d"
                 % (stats.path, stats.read, stats.kept, stats.num_dropped))
      for reason, count in stats.dropped.items():
        out.append("    %-24s %9d  first lines %s"
                   % (reason, count, stats.lines.get(reason, [])))
    return "\n".join(out)

  def to_dict(self):
    return {"files": [s.to_dict() for s in self.files.values()],
            "read": self.total_read, "kept": self.total_kept,
            "dropped": self.total_dropped}
