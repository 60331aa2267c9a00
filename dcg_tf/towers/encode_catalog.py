"""`encode_catalog`: an item tower run over the whole catalog (or given items).

The one way to turn an item tower into an embedding matrix: evaluation
(`dcg_tf.evaluation.evaluator.evaluate_model`), diagnostics (the collapse
statistics of `dcg_tf.evaluation.diagnostics`) and export
(`item_embeddings.npy`, `dcg_tf.serving.export`) all call it, and so can an
epoch callback that clusters the catalog (PCL k-means). It imports nothing
training-only, so serving code may use it.
"""

import numpy as np
import tensorflow as tf

DEFAULT_BATCH_SIZE = 8192


def encode_catalog(item_tower, num_items, batch_size=DEFAULT_BATCH_SIZE,
                   item_ids=None):
  """`item_tower(ids, training=False)` over items 1..N, batched.

  Args:
    item_tower: item ids int64 [B] -> float [B, D] (a `...Tower`).
    num_items: N; rows are items 1..N (item 0, padding, is not encoded).
    batch_size: items per tower call (the last batch may be smaller).
    item_ids: optional int [S] items to encode instead of 1..N (row s =
      item_ids[s]); `num_items` is then only used to check them.

  Returns:
    float32 [N, D] with row r = item r + 1, or [S, D] for `item_ids`.

  Example:
    >>> item_emb = encode_catalog(model.item_tower, data.num_items)  # [N, D]
  """
  if batch_size < 1:
    raise ValueError("encode_catalog: batch_size must be >= 1, got %r"
                     % (batch_size,))
  if item_ids is None:
    item_ids = np.arange(1, int(num_items) + 1, dtype=np.int64)      # [N]
  else:
    item_ids = np.asarray(item_ids, np.int64).reshape(-1)             # [S]
    if item_ids.size and (item_ids.min() < 1 or item_ids.max() > num_items):
      raise ValueError("encode_catalog: item_ids must lie in [1, %d] (num_items), "
                       "found [%d, %d]" % (num_items, item_ids.min(),
                                           item_ids.max()))
  if not item_ids.size:
    raise ValueError("encode_catalog: no item to encode (num_items=%r)"
                     % (num_items,))
  # One trace for the full batches, one for the last partial batch.
  embed = tf.function(lambda ids: item_tower(ids, training=False),
                      reduce_retracing=True)
  parts = [np.asarray(embed(tf.constant(item_ids[lo:lo + batch_size])),
                      np.float32)                                     # [b, D]
           for lo in range(0, item_ids.size, int(batch_size))]
  return np.concatenate(parts, axis=0)
