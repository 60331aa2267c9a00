"""The shared shape of the simple towers: an item embedding, then a projection head."""

from dcg_tf._keras import keras
from dcg_tf.layers.nested_config import NestedLayerConfig
from dcg_tf.layers.projection_head import ProjectionHead


class EmbeddingHeadTower(NestedLayerConfig, keras.layers.Layer):
  """Base of `ItemTower` and `MeanPoolingUserTower`: `e(.)`, then a head.

  Holds the `ItemEmbedding` `e` (shared between the towers) and the
  `ProjectionHead` `normalize(W_out MLP(.))`; a subclass defines `call`, what
  it feeds the head (one item's embedding, the mean of a history's). Not
  registered for serialization itself: its subclasses are.

  Args:
    item_embedding: an `ItemEmbedding` (shared by the item and user towers).
    output_dim: dimension of the final linear projection; None for none.
    hidden_units: hidden layer sizes before the projection.
    activation: activation of the hidden layers.
    l2_normalize: l2-normalise the output (cosine similarity downstream).
    dropout: dropout rate after each hidden layer (training only).

  Attributes:
    embedding_dim: D. normalized: whether outputs are unit vectors.
  """

  NESTED_LAYERS = ("item_embedding",)

  def __init__(self, item_embedding, output_dim=None, hidden_units=(),
               activation="relu", l2_normalize=False, dropout=0.0, **kwargs):
    super().__init__(**kwargs)
    self.item_embedding = item_embedding
    self.output_dim = None if output_dim is None else int(output_dim)
    self.hidden_units = [int(u) for u in hidden_units]
    self.activation = activation
    self.l2_normalize = bool(l2_normalize)
    self.dropout = float(dropout)

    # === Layers ===
    self.head = ProjectionHead(self.hidden_units, self.output_dim, activation,
                               self.dropout, self.l2_normalize, name="head")
    # Checkpoints written before the head was factored out hold its layers
    # directly under the tower (`<tower>/output_layer/kernel`): keep those
    # edges so they still restore (the variables are the head's, not copies).
    self.hidden_layers = self.head.hidden_layers
    self.dropout_layers = self.head.dropout_layers
    self.output_layer = self.head.output_layer

  @property
  def embedding_dim(self):
    return self.head.output_dim_for(self.item_embedding.dim)

  @property
  def normalized(self):
    return self.l2_normalize

  def get_config(self):
    config = super().get_config()
    config.update(self.nested_layer_config(),
                  output_dim=self.output_dim, hidden_units=list(self.hidden_units),
                  activation=self.activation, l2_normalize=self.l2_normalize,
                  dropout=self.dropout)
    return config
