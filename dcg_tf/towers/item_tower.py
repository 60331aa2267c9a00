"""Item tower: item ids -> item embeddings g(y), the exportable item encoder."""

from dcg_tf._keras import keras
from dcg_tf.towers.embedding_head_tower import EmbeddingHeadTower


@keras.utils.register_keras_serializable(package="dcg_tf")
class ItemTower(EmbeddingHeadTower):
  """Item embedding followed by an optional MLP and l2 normalisation.

  `g(y) = normalize(W_out MLP(e(y)))` where `e` is an `ItemEmbedding` (id and
  feature embeddings) and `normalize(W_out MLP(.))` is a `ProjectionHead`:
  `hidden_units` Dense layers with `activation` and dropout, then `W_out` a
  linear projection to `output_dim`.
  With no hidden units and `output_dim=None` the tower is the item embedding
  itself (matrix-factorisation / SASRec-style shared item embeddings).
  Two-tower baseline of YouTube DNN (Covington et al., RecSys'16) and
  Yi et al. (RecSys'19); cosine variant as in CLRec (KDD'21) appendix B.2.

  Args:
    item_embedding: an `ItemEmbedding` (share it with the user tower).
    output_dim: dimension of the final linear projection; None for none.
    hidden_units: list of hidden layer sizes before the projection.
    activation: activation of the hidden layers.
    l2_normalize: l2-normalise the output (cosine similarity downstream).
    dropout: dropout rate after each hidden layer (training only).

  Call:
    item_ids: int64 [B] (or any [...]) -> float32 [B, D].
    training: the head's dropout is on when True.
    value_mask, field_transform: the augmentation hook, passed to the item
      embedding (`ItemEmbedding.call`): `value_mask` (dict name -> bool
      [B, max_len]) drops values of multi-valued features before pooling,
      `field_transform` (callable `[B, F+1, D] -> [B, F+1, D]`) rewrites the
      field rows (`ItemEmbedding.field_names` order) before they are combined.
      Both default to None: the plain tower, the only call that serving and
      export make. The tower holds no reference to what is passed here, so an
      augmentation's weights (e.g. `FieldMasking`'s default embeddings) stay
      with the training model and never enter the tower's checkpoint, config
      or export.

  Augmentation example (SSL-CFM section 3.2: mask fields, then drop values;
  MicRec Eq. 2: element-level dropout on the concatenated field embeddings):
    >>> masking = FieldMasking(num_fields=len(emb.field_names), dim=emb.dim)
    >>> keep = ValueDropout(0.3, emb.multi_valued_lengths)(ids, seed=seed_a)
    >>> view = tower(ids, training=True, value_mask=keep,
    ...              field_transform=lambda fields: masking(fields, mask))
    >>> drop = ElementDropout(0.5)
    >>> view = tower(ids, training=True,
    ...              field_transform=lambda fields: drop(fields, seed=seed_b))

  Attributes:
    embedding_dim: D. normalized: whether outputs are unit vectors.

  Example:
    >>> tower = ItemTower(ItemEmbedding(num_items=100, dim=32), output_dim=16,
    ...                   hidden_units=[64], l2_normalize=True)
    >>> tower(tf.constant([1, 5]))   # [2, 16], unit rows
  """

  def call(self, item_ids, training=False, value_mask=None, field_transform=None):
    x = self.item_embedding(item_ids, value_mask=value_mask,
                            field_transform=field_transform)  # [B, D_item]
    return self.head(x, training=training)            # [B, D]
