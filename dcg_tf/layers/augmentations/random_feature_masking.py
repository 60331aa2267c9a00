"""Random Feature Masking (RFM): a random split of the item fields."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.augmentations.correlated_feature_masking import masked_field_count


@keras.utils.register_keras_serializable(package="dcg_tf")
class RandomFeatureMasking(keras.layers.Layer):
  """Field masks for two views, drawn at random (the baselines of CFM).

  SSL-CFM (Yao et al., CIKM'21) section 3.2 and 4.5:
  - RFM (`complementary=True`): "randomly split the feature set into two
    disjoint subsets"; the first view masks `num_masked` fields drawn
    uniformly without replacement, the second view masks the others.
  - RFM_no_compl (`complementary=False`): "2 independent sets of features are
    masked at random": each view masks its own `num_masked` random fields, so
    the views may share fields (and both may keep one).
  `num_masked` defaults to CFM's count, floor(k/2) + 1 capped at k - 1
  (`masked_field_count`), so RFM differs from CFM only in which fields are
  chosen. One pair of masks per batch, like CFM. Draws are
  `tf.random.stateless_uniform` keyed by `seed` (the second view's
  independent draw by `stateless_fold_in(seed, 1)`).

  Args:
    num_fields: k, `len(ItemEmbedding.field_names)` (the id included).
    num_masked: fields masked per view; default `masked_field_count(k)`.
    complementary: the second view masks the complement of the first.

  Call:
    seed: int [2] stateless seed, e.g. `[run_seed, step]`.
    Returns `(mask_a, mask_b)`, bool [k] each, True = masked.

  Example:
    >>> rfm = RandomFeatureMasking(num_fields=4)
    >>> mask_a, mask_b = rfm(tf.constant([0, step]))   # mask_b == ~mask_a
  """

  def __init__(self, num_fields, num_masked=None, complementary=True, **kwargs):
    super().__init__(**kwargs)
    k = int(num_fields)
    default = masked_field_count(k)
    self.num_fields = k
    self.num_masked = default if num_masked is None else int(num_masked)
    if not 1 <= self.num_masked <= k - 1:
      raise ValueError("RandomFeatureMasking %r: num_masked must be in [1, %d] "
                       "for %d fields, got %d"
                       % (self.name, k - 1, k, self.num_masked))
    self.complementary = bool(complementary)

  def _random_subset(self, seed):
    """bool [k]: `num_masked` fields drawn uniformly without replacement."""
    uniform = tf.random.stateless_uniform([self.num_fields], seed=seed)  # [k]
    rank = tf.argsort(tf.argsort(uniform))                              # [k]
    return rank < self.num_masked                                       # [k]

  def call(self, seed):
    seed = tf.convert_to_tensor(seed)
    mask_a = self._random_subset(seed)                                  # [k]
    if self.complementary:
      return mask_a, tf.logical_not(mask_a)
    other = tf.random.experimental.stateless_fold_in(seed, 1)           # [2]
    return mask_a, self._random_subset(other)

  def get_config(self):
    config = super().get_config()
    config.update(num_fields=self.num_fields, num_masked=self.num_masked,
                  complementary=self.complementary)
    return config
