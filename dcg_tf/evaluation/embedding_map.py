"""Maps of item embeddings: exact t-SNE, and NMI of k-means clusters vs groups.

The figures of the papers that show whether a module changes how items
cluster: SSL-CFM (Yao et al., CIKM'21) Figure 5, a t-SNE of item embeddings
coloured by genre with and without SSL; PCL-AISL (Li et al., CIKM'22)
Figure 3, a t-SNE of 10 categories x 100 items with and without a module,
plus the normalised mutual information (NMI) between k-means clusters of the
embeddings and the categories, a number that does not need eyes.

- `tsne`: exact t-SNE (van der Maaten & Hinton, "Visualizing Data using
  t-SNE", JMLR 9, 2008): Gaussian conditionals p_{j|i} whose bandwidth is
  found by binary search to match the perplexity (section 2,
  `conditional_probabilities`), symmetrised p_ij = (p_{j|i} + p_{i|j}) / 2n
  (section 3.1, `joint_probabilities`), Student-t q_ij in the map (Eq. 4),
  gradient descent on KL(P || Q) (Eq. 5) with momentum, per-parameter gains
  and early exaggeration (section 3.4). O(n^2) memory and time per
  iteration: meant for a few thousand points at most (1,000 points: about
  40 ms per iteration on the loaded 2-core development machine, under a
  minute for 1,000 iterations).
- `normalized_mutual_information`: NMI(A, B) = I(A; B) / ((H(A) + H(B)) / 2),
  the arithmetic-mean normalisation (the default of scikit-learn's
  `normalized_mutual_info_score`), in [0, 1]; 1 for identical partitions up to
  relabelling, 0 for independent ones.
- `sample_groups`: the items of the most frequent values of a categorical
  item field, a fixed number per value.
- k-means: `dcg_tf.training_state.prototypes.kmeans` (Faiss), the one k-means
  of the package; `experiments/embedding_map.py` joins the pieces (this
  module is NumPy only).

  >>> items, groups = sample_groups(data.item_features["genre"], 10, 100, seed=0)
  >>> emb = encode_catalog(model.item_tower, data.num_items, item_ids=items)
  >>> _, clusters = kmeans(emb, 10, seed=0)
  >>> normalized_mutual_information(clusters, groups)
  >>> xy = tsne(emb, perplexity=30, seed=0)          # [1000, 2]
"""

import numpy as np


# === NMI ===


def _entropy(counts):
  p = counts[counts > 0] / counts.sum()
  return float(-(p * np.log(p)).sum())


def normalized_mutual_information(labels_a, labels_b):
  """NMI with arithmetic-mean normalisation: I(A;B) / ((H(A) + H(B)) / 2).

  Entropies and I in nats over the n labelled points (the ratio does not
  depend on the base). Both partitions with a single group: 1 (they are
  identical); exactly one with a single group: 0 (I = 0).

  Args:
    labels_a, labels_b: int (or any hashable) [n], the two partitions.

  Returns:
    float in [0, 1].
  """
  labels_a = np.asarray(labels_a).reshape(-1)
  labels_b = np.asarray(labels_b).reshape(-1)
  if labels_a.shape != labels_b.shape or not labels_a.size:
    raise ValueError("normalized_mutual_information: the partitions must label "
                     "the same n > 0 points, got %d and %d labels"
                     % (labels_a.size, labels_b.size))
  _, a = np.unique(labels_a, return_inverse=True)                    # [n]
  _, b = np.unique(labels_b, return_inverse=True)                    # [n]
  joint = np.zeros((a.max() + 1, b.max() + 1), np.float64)           # [Ka, Kb]
  np.add.at(joint, (a, b), 1.0)
  h_a, h_b = _entropy(joint.sum(axis=1)), _entropy(joint.sum(axis=0))
  if h_a == 0.0 and h_b == 0.0:
    return 1.0
  p = joint / joint.sum()                                            # [Ka, Kb]
  outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
  live = p > 0
  mutual = float((p[live] * np.log(p[live] / outer[live])).sum())
  return float(min(max(mutual / ((h_a + h_b) / 2.0), 0.0), 1.0))


# === Item groups ===


def sample_groups(values, num_groups, per_group, seed=0):
  """Items of the `num_groups` most frequent values of a field, `per_group` each.

  Args:
    values: int [N+1] (single-valued field) or [N+1, L] (multi-valued,
      0-padded) over the catalog rows, row 0 padding, as in `catalog.npz`. A
      multi-valued item is grouped by its FIRST value (column 0), so every
      item is in at most one group. Value 0 (unknown / no value) is never a
      group.
    num_groups: how many values, the most frequent first (ties: the smaller
      value index).
    per_group: items drawn per value, uniformly without replacement with
      `np.random.default_rng(seed)`; a value with fewer items gives all of
      them.
    seed: the sampling seed.

  Returns:
    `(item_ids int64 [S], group_values int64 [S])`, grouped by value in
    order of frequency, ids ascending within a group.
  """
  values = np.asarray(values)
  if values.ndim == 2:
    values = values[:, 0]                                            # [N+1]
  if values.ndim != 1 or values.shape[0] < 2:
    raise ValueError("sample_groups: values must be [N+1] or [N+1, L] over the "
                     "catalog rows, got shape %s" % (values.shape,))
  if num_groups < 1 or per_group < 1:
    raise ValueError("sample_groups: num_groups and per_group must be >= 1, got "
                     "%r and %r" % (num_groups, per_group))
  first = values[1:].astype(np.int64)                                # [N]
  counts = np.bincount(first)
  counts[0] = 0                                                      # unknown
  order = np.lexsort((np.arange(counts.size), -counts))              # [V]
  chosen = [v for v in order[:num_groups] if counts[v] > 0]
  if len(chosen) < num_groups:
    raise ValueError("sample_groups: the field has %d value(s) with items, %d "
                     "groups were asked for; lower num_groups"
                     % (len(chosen), num_groups))
  rng = np.random.default_rng(seed)
  items, groups = [], []
  for value in chosen:
    members = np.flatnonzero(first == value) + 1                     # item ids
    take = min(per_group, members.size)
    picked = np.sort(rng.choice(members, size=take, replace=False))
    items.append(picked)
    groups.append(np.full(take, value, np.int64))
  return np.concatenate(items).astype(np.int64), np.concatenate(groups)


# === t-SNE ===


def _squared_distances(x):
  """float64 [n, n]: ||x_i - x_j||^2, zero diagonal."""
  sq = (x * x).sum(axis=1)                                           # [n]
  d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)                    # [n, n]
  np.fill_diagonal(d, 0.0)
  return np.maximum(d, 0.0)


def conditional_probabilities(squared_distances, perplexity, tolerance=1e-5,
                              max_steps=200):
  """p_{j|i} with each row's bandwidth set by binary search (section 2).

  `p_{j|i} = exp(-beta_i d_ij^2) / sum_{k != i} exp(-beta_i d_ik^2)`,
  `beta_i = 1 / (2 sigma_i^2)` chosen so that the row's perplexity
  `exp(H(P_i))` (H in nats) equals `perplexity` to within `tolerance` in H:
  bisection on beta_i, all rows at once (doubling beta_i until bracketed).

  Args:
    squared_distances: float [n, n], d_ij^2 (the diagonal is ignored).
    perplexity: target perplexity, in (1, n - 1].

  Returns:
    float64 [n, n], rows summing to 1, zero diagonal.
  """
  d = np.asarray(squared_distances, np.float64)
  n = d.shape[0]
  if not 1.0 < perplexity <= n - 1:
    raise ValueError("t-SNE: perplexity must be in (1, n - 1] = (1, %d] for %d "
                     "points, got %r" % (n - 1, n, perplexity))
  off = ~np.eye(n, dtype=bool)
  d = np.where(off, d, np.inf)                       # p_{i|i} = exp(-inf) = 0
  # Shifting a row by its smallest distance leaves its p_{j|i} unchanged.
  d = d - d.min(axis=1, keepdims=True)                               # [n, n]
  target = np.log(perplexity)
  beta = np.ones(n)
  low, high = np.zeros(n), np.full(n, np.inf)
  for _ in range(max_steps):
    p = np.exp(-d * beta[:, None])                                   # [n, n]
    total = p.sum(axis=1, keepdims=True)                             # [n, 1]
    p /= total
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)     # [n]
    gap = entropy - target
    if np.all(np.abs(gap) < tolerance):
      break
    too_flat = gap > 0                        # entropy too high: narrow it
    low = np.where(too_flat, beta, low)
    high = np.where(too_flat, high, beta)
    beta = np.where(np.isinf(high), beta * 2.0, (low + high) / 2.0)
  return p


def joint_probabilities(x, perplexity):
  """P of section 3.1: p_ij = (p_{j|i} + p_{i|j}) / 2n, float64 [n, n]."""
  x = np.asarray(x, np.float64)
  conditional = conditional_probabilities(_squared_distances(x), perplexity)
  return (conditional + conditional.T) / (2.0 * x.shape[0])


def tsne(x, perplexity=30.0, num_iterations=1000, learning_rate="auto",
         early_exaggeration=12.0, exaggeration_iterations=250, seed=0,
         return_kl=False):
  """Exact t-SNE of `x` into two dimensions (van der Maaten & Hinton, 2008).

  Map points y_i start at N(0, 1e-4 I) drawn with `seed`. Each iteration
  computes q_ij = (1 + ||y_i - y_j||^2)^-1 / sum_{k != l} (1 + ||y_k - y_l||^2)^-1
  (Eq. 4) and the gradient of KL(P || Q),
  dC/dy_i = 4 sum_j (p_ij - q_ij)(y_i - y_j)(1 + ||y_i - y_j||^2)^-1 (Eq. 5),
  and steps with momentum 0.5 for the first `exaggeration_iterations`
  iterations and 0.8 after (section 3.4), with per-coordinate gains
  (+0.2 when the gradient's sign changes, x0.8 otherwise, at least 0.01; the
  authors' reference implementation). P is multiplied by
  `early_exaggeration` during the first `exaggeration_iterations`
  iterations (section 3.4; 12 and 250 as in later implementations, the
  paper's 4 and 50 are arguments away). Deterministic for a given seed.

  Args:
    x: float [n, D].
    perplexity: of the conditionals (`conditional_probabilities`); lower it
      for small n (it must be at most n - 1).
    num_iterations, early_exaggeration, exaggeration_iterations: the
      optimiser's schedule.
    learning_rate: the step size eta, or "auto": max(n / early_exaggeration
      / 4, 50) (Belkina et al., Nature Communications 10, 2019), which keeps
      small maps from overshooting during early exaggeration.
    seed: the initialisation seed.
    return_kl: also return KL(P || Q) at the end.

  Returns:
    float64 [n, 2] (and the final KL divergence in nats with `return_kl`).
  """
  x = np.asarray(x, np.float64)
  n = x.shape[0]
  if learning_rate == "auto":
    learning_rate = max(n / early_exaggeration / 4.0, 50.0)
  p = joint_probabilities(x, perplexity)                             # [n, n]
  p = np.maximum(p, 1e-12)
  np.fill_diagonal(p, 0.0)
  y = np.random.default_rng(seed).normal(0.0, 1e-2, (n, 2))          # [n, 2]
  velocity = np.zeros_like(y)
  gains = np.ones_like(y)
  for it in range(num_iterations):
    exaggerated = it < exaggeration_iterations
    momentum = 0.5 if exaggerated else 0.8
    weights = 1.0 / (1.0 + _squared_distances(y))                    # [n, n]
    np.fill_diagonal(weights, 0.0)
    q = np.maximum(weights / weights.sum(), 1e-12)                   # [n, n]
    stiffness = ((early_exaggeration if exaggerated else 1.0) * p - q) * weights
    grad = 4.0 * (stiffness.sum(axis=1)[:, None] * y - stiffness @ y)  # [n, 2]
    same_sign = np.sign(grad) == np.sign(velocity)
    gains = np.maximum(np.where(same_sign, gains * 0.8, gains + 0.2), 0.01)
    velocity = momentum * velocity - learning_rate * gains * grad
    y = y + velocity
    y = y - y.mean(axis=0)
  if not return_kl:
    return y
  weights = 1.0 / (1.0 + _squared_distances(y))
  np.fill_diagonal(weights, 0.0)
  q = np.maximum(weights / weights.sum(), 1e-12)
  off = ~np.eye(n, dtype=bool)
  kl = float((p[off] * np.log(p[off] / q[off])).sum())
  return y, kl
