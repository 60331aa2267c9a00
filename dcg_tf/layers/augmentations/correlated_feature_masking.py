"""Correlated Feature Masking (CFM): mask a seed field with its most related fields."""

import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers import masking


def masked_field_count(num_fields):
  """|F_m|, the fields masked in the first view: floor(k/2) + 1, at most k - 1.

  SSL-CFM (Yao et al., CIKM'21) section 3.2: F_m is the seed field plus its
  top-n correlated fields with n = floor(k/2), so |F_m| = floor(k/2) + 1 (k = 8
  masks 5 in one view and the other 3 in the complementary view). For k = 2
  that would mask everything in one view, which then embeds every item to the
  same vector and teaches nothing; the count is capped at k - 1 so that each
  view keeps at least one field (the cap only binds for k = 2).

  Args:
    num_fields: k >= 2.
  """
  k = int(num_fields)
  if k < 2:
    raise ValueError("feature masking splits the item fields between two views "
                     "and needs at least 2 fields, got %d: give the item "
                     "embedding features (item_features) or its id" % k)
  return min(k // 2 + 1, k - 1)


@keras.utils.register_keras_serializable(package="dcg_tf")
class CorrelatedFeatureMasking(keras.layers.Layer):
  """Complementary field masks guided by mutual information (CFM).

  SSL-CFM (Yao et al., CIKM'21) section 3.2, "Correlated Feature Masking":
  per batch, a seed field f_seed is drawn uniformly from the k fields; the
  n = floor(k/2) fields with the highest mutual information (Eq. 4, computed
  beforehand over the catalog, `dcg_tf.data.mutual_information`) to f_seed
  join it, F_m = {f_seed, f_c1, ..., f_cn}. The first view masks F_m and the
  second view masks the complement F \\ F_m, so highly correlated fields are
  hidden together and the two views share no field (no shortcut). Ties in MI
  go to the lower field index. One pair of masks serves the whole batch ("we
  change the seed feature per batch"); `FieldMasking` broadcasts it.

  The fields are the rows of `ItemEmbedding.field_names`, the id ("item")
  included: the paper's items carry their id as a feature (Wikipedia's
  x_id, AAI's id), and an id left in both views would let the contrastive
  task match views by id alone. Under a uniform catalog distribution the id
  has MI = H(f) with every field f, the largest MI f can have.

  The seed field is `tf.random.stateless_uniform` keyed by `seed` (e.g.
  `[run_seed, optimizer step]`), so it changes from step to step and a
  resumed run draws the same one.

  Args:
    mutual_information: float [k, k], MI between fields i and j (only the
      off-diagonal entries are read), in `field_names` order.
    num_masked: |F_m|; default `masked_field_count(k)` = floor(k/2) + 1
      (capped at k - 1).

  Call:
    seed: int [2] stateless seed.
    Returns `(mask_a, mask_b)`, bool [k] each, True = masked;
    `mask_b == ~mask_a`.

  Example:
    >>> cfm = CorrelatedFeatureMasking(mi)            # mi: [k, k] NumPy
    >>> mask_a, mask_b = cfm(tf.constant([run_seed, step]))
    >>> view_a = tower(ids, training=True,
    ...                field_transform=lambda f: field_masking(f, mask_a))
  """

  def __init__(self, mutual_information, num_masked=None, **kwargs):
    super().__init__(**kwargs)
    mi = np.asarray(mutual_information, np.float64)
    if mi.ndim != 2 or mi.shape[0] != mi.shape[1]:
      raise ValueError("CorrelatedFeatureMasking %r: mutual_information must be "
                       "a square [k, k] matrix, got shape %s"
                       % (self.name, mi.shape))
    if not np.isfinite(mi).all():
      raise ValueError("CorrelatedFeatureMasking %r: mutual_information has "
                       "non-finite entries" % self.name)
    k = mi.shape[0]
    default = masked_field_count(k)
    self.mutual_information = tuple(tuple(row) for row in mi.tolist())
    self.num_masked = default if num_masked is None else int(num_masked)
    if not 1 <= self.num_masked <= k - 1:
      raise ValueError("CorrelatedFeatureMasking %r: num_masked must be in "
                       "[1, %d] for %d fields, got %d"
                       % (self.name, k - 1, k, self.num_masked))
    self.num_fields = k

  def seed_field(self, seed):
    """f_seed: int32 scalar, uniform over the k fields, a function of `seed`."""
    return tf.random.stateless_uniform([], seed=seed, minval=0,
                                       maxval=self.num_fields, dtype=tf.int32)

  def call(self, seed):
    k = self.num_fields
    mi = tf.constant(self.mutual_information, tf.float32)             # [k, k]
    seed_field = self.seed_field(seed)                                # []
    fields = tf.range(k)                                              # [k]
    is_seed = tf.equal(fields, seed_field)                            # [k]
    row = tf.gather(mi, seed_field)                                   # [k]
    row = masking.mask_logits(row, tf.logical_not(is_seed))           # [k], seed last
    _, partners = tf.math.top_k(row, k=self.num_masked - 1)           # [n]
    chosen = tf.reduce_any(
        tf.equal(fields[:, None], partners[None, :]), axis=1)          # [k]
    mask_a = tf.logical_or(is_seed, chosen)                           # [k]
    return mask_a, tf.logical_not(mask_a)

  def get_config(self):
    config = super().get_config()
    config.update(mutual_information=[list(r) for r in self.mutual_information],
                  num_masked=self.num_masked)
    return config
