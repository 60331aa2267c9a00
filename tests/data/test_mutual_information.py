"""Eq. 4 over the catalog: hand-worked values, a dense NumPy reference
(multi-valued fields included), chunking, and the planted synthetic groups."""

import numpy as np
import pytest

from dcg_tf.data import synthetic
from dcg_tf.data.mutual_information import catalog_mutual_information


def _catalog(*columns):
  """Prepends the padding row 0 to each per-item column."""
  out = []
  for c in columns:
    c = np.asarray(c, np.int64)
    out.append(np.concatenate([np.zeros((1,) + c.shape[1:], np.int64), c]))
  return out


def test_hand_worked_two_by_two():
  # Items (x, y): (1,1), (1,1), (1,2), (2,2).
  # P(1,1) = 1/2, P(1,2) = 1/4, P(2,2) = 1/4; P_x = (3/4, 1/4), P_y = (1/2, 1/2).
  # MI = 1/2 log(4/3) + 1/4 log(2/3) + 1/4 log(2)
  #    = 0.143841 - 0.101366 + 0.173287 = 0.215762 nats.
  x, y = _catalog([1, 1, 1, 2], [1, 1, 2, 2])
  mi = catalog_mutual_information({"x": x, "y": y})
  assert mi[0, 1] == pytest.approx(0.215762, abs=1e-6)
  assert mi[1, 0] == mi[0, 1]
  # Diagonal: entropies. H(x) = -(3/4 log 3/4 + 1/4 log 1/4) = 0.562335.
  assert mi[0, 0] == pytest.approx(0.562335, abs=1e-6)
  assert mi[1, 1] == pytest.approx(np.log(2), abs=1e-12)


def test_hand_worked_multi_valued():
  # Item A: x = 1, tags {1, 2}; item B: x = 2, tags {2}; item C: x = 2, tags {}
  # (no valid value: the single value 0). A's pairs weigh 1/2 each.
  # Joint / 3: P(1,1) = 1/6, P(1,2) = 1/6, P(2,2) = 1/3, P(2,0) = 1/3.
  # P_x = (1/3, 2/3); P_tags: 0 -> 1/3, 1 -> 1/6, 2 -> 1/2.
  # MI = 1/6 log((1/6)/(1/3*1/6)) + 1/6 log((1/6)/(1/3*1/2))
  #      + 1/3 log((1/3)/(2/3*1/2)) + 1/3 log((1/3)/(2/3*1/3))
  #    = 1/6 log 3 + 1/6 log 1 + 1/3 log 1 + 1/3 log(3/2)
  #    = 0.183102 + 0.135155 = 0.318257 nats.
  x, tags = _catalog([1, 2, 2], [[1, 2], [2, 0], [0, 0]])
  mi = catalog_mutual_information({"x": x, "tags": tags})
  assert mi[0, 1] == pytest.approx(0.318257, abs=1e-6)


def test_dependent_fields_share_their_entropy_and_independent_ones_nothing():
  n = 24
  items = np.arange(n)
  x = items % 4 + 1                      # 4 values, 6 items each
  y = (x * 7) % 5 + 1                     # a bijection of x
  z = items // 4 % 3 + 1                  # crossed with x: exactly independent
  x, y, z = _catalog(x, y, z)
  mi = catalog_mutual_information({"x": x, "y": y, "z": z})
  assert mi[0, 1] == pytest.approx(np.log(4), abs=1e-12)   # = H(X)
  assert abs(mi[0, 2]) < 1e-12
  # The id (one value per item) shares H(f) with every field f.
  with_id = catalog_mutual_information({"item": np.arange(n + 1), "x": x, "z": z})
  assert with_id[0, 1] == pytest.approx(np.log(4), abs=1e-12)
  assert with_id[0, 2] == pytest.approx(np.log(3), abs=1e-12)


def _dense_reference(a, b):
  """Eq. 4 with a dense joint table filled item by item (the docstring's rule)."""
  a, b = a[1:], b[1:]
  a = a[:, None] if a.ndim == 1 else a
  b = b[:, None] if b.ndim == 1 else b
  joint = np.zeros((a.max() + 1, b.max() + 1))
  for row_a, row_b in zip(a, b):
    va = [v for v in row_a if v > 0] if a.shape[1] > 1 else list(row_a)
    vb = [v for v in row_b if v > 0] if b.shape[1] > 1 else list(row_b)
    va, vb = va or [0], vb or [0]
    for u in va:
      for v in vb:
        joint[u, v] += 1.0 / (len(va) * len(vb))
  joint /= len(a)
  pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
  nz = joint > 0
  return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def test_matches_a_dense_reference_whatever_the_chunk_size():
  rng = np.random.default_rng(0)
  n = 300
  single = rng.integers(0, 6, n)                       # value 0 included
  related = (single + rng.integers(0, 2, n)) % 6 + 1
  multi = np.where(rng.random((n, 4)) < 0.6, rng.integers(1, 9, (n, 4)), 0)
  multi[:, 0] = np.where(rng.random(n) < 0.7, single + 1, multi[:, 0])
  fields = dict(zip(["single", "related", "multi"],
                    _catalog(single, related, multi)))
  names = list(fields)
  expected = np.array([[_dense_reference(fields[a], fields[b]) for b in names]
                       for a in names])
  for chunk in (1, 7, 1 << 22):
    got = catalog_mutual_information(fields, max_pairs_per_chunk=chunk)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(got[off], expected[off], rtol=1e-9, atol=1e-12)


def test_recovers_the_planted_groups_of_the_synthetic_catalog():
  catalog = synthetic.generate_correlated_fields(20_000, seed=0)
  names = list(catalog.features)
  assert len(names) >= 8
  mi = catalog_mutual_information(catalog.features)
  off = mi.copy()
  np.fill_diagonal(off, -np.inf)
  for i, name in enumerate(names):
    partner = names[int(np.argmax(off[i]))]
    assert catalog.groups[partner] == catalog.groups[name], (name, partner)
  # Single-valued pairs of one group share the planted MI (plug-in bias is
  # about (K-1)^2 / 2N < 0.006 nats here); pairs across groups about 0.
  for i, a in enumerate(names):
    for j, b in enumerate(names[:i]):
      g = catalog.groups[a]
      if g != catalog.groups[b]:
        assert mi[i, j] < 0.01, (a, b, mi[i, j])
      elif catalog.features[a].ndim == 1 and catalog.features[b].ndim == 1:
        planted = synthetic.planted_mutual_information(catalog.num_values[g],
                                                       catalog.noise[g])
        assert mi[i, j] == pytest.approx(planted, abs=0.02), (a, b)


def test_errors_name_the_field():
  with pytest.raises(ValueError, match="'bad'.*dtype"):
    catalog_mutual_information({"ok": np.arange(3), "bad": np.ones(3)})
  with pytest.raises(ValueError, match="different numbers of rows"):
    catalog_mutual_information({"a": np.arange(3), "b": np.arange(4)})
