"""Mutual information between categorical item fields over the catalog (SSL-CFM Eq. 4).

`MI(V_i, V_j) = sum_{v_i, v_j} P(v_i, v_j) log(P(v_i, v_j) / (P(v_i) P(v_j)))`
(Yao et al., CIKM'21, Eq. 4), in nats, where P is the distribution of field
values over the catalog's items, each item counted once (the catalog, not the
training events: CFM masks fields of items drawn uniformly from the corpus).
Correlated Feature Masking reads this matrix
(`dcg_tf.layers.augmentations.correlated_feature_masking`).

Fields and values:
- A field is an int array over the catalog rows `[N+1]` (single-valued) or
  `[N+1, L]` (multi-valued, 0-padded), as in `catalog.npz`; row 0 (padding)
  is skipped. The id field is `np.arange(N+1)`.
- Single-valued: value 0 (unknown) is a value like any other.
- Multi-valued: an item with n_i > 0 valid values of field i and n_j of
  field j contributes each of its n_i * n_j value pairs with weight
  1 / (n_i n_j), so every item weighs 1 in every joint table, and the
  marginal of a field is the same whichever partner it is paired with (a
  value of an item with n values counts 1/n). An item with no valid value
  (all padding) counts as the single value 0 ("missing").
- The diagonal holds the entropy H(V_i) of the marginal (= MI(V_i, V_i) for a
  single-valued field); CFM never reads it.

Memory: joint counts are sparse, keyed by `v_i * (max V_j + 1) + v_j` and
summed with `np.unique` per chunk of items (at most `max_pairs_per_chunk`
pairs at once), then merged; no dense V_i x V_j table is ever formed, so the
memory is bounded by the number of distinct value pairs, not the vocabulary
product.

  >>> mi = catalog_mutual_information(
  ...     {"item": np.arange(n + 1), "category": cat, "tags": tags})   # [3, 3]
"""

import numpy as np


def catalog_mutual_information(fields, max_pairs_per_chunk=1 << 22):
  """MI (Eq. 4) for every pair of fields; float64 [k, k], fields in dict order.

  Args:
    fields: dict name -> int array [N+1] or [N+1, L] over the catalog rows
      (row 0 = padding, skipped); every array has the same N+1 rows.
    max_pairs_per_chunk: bound on the value pairs formed at once (items per
      chunk = this / (L_i L_j)).

  Returns:
    float64 [k, k], symmetric; off-diagonal entries MI(V_i, V_j) in nats,
    diagonal entries H(V_i).
  """
  names = list(fields)
  columns = [_as_column(name, fields[name]) for name in names]
  rows = {c.shape[0] for c in columns}
  if len(rows) != 1:
    raise ValueError("catalog_mutual_information: fields have different numbers "
                     "of rows %s; every field must cover the same catalog"
                     % {n: c.shape[0] for n, c in zip(names, columns)})
  num_items = rows.pop() - 1
  if num_items < 1:
    raise ValueError("catalog_mutual_information: the catalog has no items")
  values = [_values_and_weights(c[1:]) for c in columns]            # rows 1..N
  marginals = [_marginal(v, w, num_items) for v, w in values]
  k = len(names)
  mi = np.zeros((k, k), np.float64)
  for i in range(k):
    p = marginals[i][marginals[i] > 0]
    mi[i, i] = float(-(p * np.log(p)).sum())
    for j in range(i + 1, k):
      mi[i, j] = mi[j, i] = _pair_mutual_information(
          values[i], values[j], marginals[i], marginals[j], num_items,
          max_pairs_per_chunk)
  return mi


def _as_column(name, array):
  """int64 [N+1, L] (a single-valued field gets L = 1)."""
  array = np.asarray(array)
  if not np.issubdtype(array.dtype, np.integer):
    raise ValueError("catalog_mutual_information: field %r has dtype %s; fields "
                     "are integer value indices" % (name, array.dtype))
  if array.ndim == 1:
    array = array[:, None]
  if array.ndim != 2:
    raise ValueError("catalog_mutual_information: field %r must be [N+1] or "
                     "[N+1, L], got shape %s" % (name, array.shape))
  if (array < 0).any():
    raise ValueError("catalog_mutual_information: field %r has negative values"
                     % name)
  return array.astype(np.int64)


def _values_and_weights(column):
  """(values [N, L], weight per value [N, L]): 1/n on the n valid values.

  A single-valued column keeps its value (0 included) with weight 1; a
  multi-valued row without valid values becomes value 0 with weight 1.
  """
  if column.shape[1] == 1:
    return column, np.ones(column.shape, np.float64)
  valid = column > 0                                                 # [N, L]
  count = valid.sum(axis=1)                                          # [N]
  empty = count == 0
  valid[empty, 0] = True                   # "missing": value 0, weight 1
  count = np.maximum(count, 1)
  weights = valid / count[:, None].astype(np.float64)                # [N, L]
  return column, weights


def _marginal(values, weights, num_items):
  """P(v) over the catalog: float64 [max v + 1]."""
  counts = np.bincount(values.ravel(), weights=weights.ravel())
  return counts / num_items


def _pair_mutual_information(field_a, field_b, p_a, p_b, num_items, max_pairs):
  values_a, weights_a = field_a                                      # [N, La]
  values_b, weights_b = field_b                                      # [N, Lb]
  width_b = np.int64(p_b.size)                                       # max v_b + 1
  if p_a.size * float(width_b) >= 2.0 ** 62:
    raise ValueError("catalog_mutual_information: vocabularies of %d x %d values "
                     "overflow the int64 pair keys" % (p_a.size, width_b))
  per_item = values_a.shape[1] * values_b.shape[1]
  chunk = max(1, int(max_pairs) // per_item)
  keys = np.zeros(0, np.int64)
  sums = np.zeros(0, np.float64)
  for lo in range(0, num_items, chunk):
    hi = min(num_items, lo + chunk)
    pair_keys = (values_a[lo:hi, :, None] * width_b
                 + values_b[lo:hi, None, :])                         # [C, La, Lb]
    pair_weights = weights_a[lo:hi, :, None] * weights_b[lo:hi, None, :]
    live = pair_weights > 0                                          # [C, La, Lb]
    keys, sums = _merge(keys, sums, pair_keys[live], pair_weights[live])
  joint = sums / num_items                                           # [P]
  p_i = p_a[keys // width_b]                                         # [P]
  p_j = p_b[keys % width_b]                                          # [P]
  return float(max((joint * np.log(joint / (p_i * p_j))).sum(), 0.0))


def _merge(keys, sums, new_keys, new_weights):
  """Sparse counts (keys, sums) plus weighted occurrences of `new_keys`."""
  all_keys = np.concatenate([keys, new_keys])
  all_weights = np.concatenate([sums, new_weights])
  unique, inverse = np.unique(all_keys, return_inverse=True)
  return unique, np.bincount(inverse.ravel(), weights=all_weights,
                             minlength=unique.size)
