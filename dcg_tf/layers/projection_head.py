"""MLP head of a tower: hidden Dense layers, a linear projection, l2 normalisation."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.resumable_dropout import ResumableDropout


@keras.utils.register_keras_serializable(package="dcg_tf")
class ProjectionHead(keras.layers.Layer):
  """`normalize(W_out MLP(x))`: the head the two-tower encoders put on top.

  The MLP is `hidden_units` Dense layers with `activation`, each followed by
  dropout (training only; `ResumableDropout`, so a resumed run drops the same
  units); `W_out` is a linear projection to `output_dim`;
  `normalize` is an optional l2 normalisation (cosine similarity downstream).
  With no hidden units, `output_dim=None` and no normalisation the head is the
  identity. YouTube DNN (Covington et al., RecSys'16) section 3 / Figure 3
  (ReLU layers), Yi et al. (RecSys'19) section 5; cosine variant as in CLRec
  (KDD'21) appendix B.2.

  Args:
    hidden_units: hidden layer sizes before the projection.
    output_dim: dimension of the final linear projection; None for none.
    activation: activation of the hidden layers.
    dropout: dropout rate after each hidden layer (training only).
    l2_normalize: l2-normalise the output.

  Call:
    x: float32 [B, D_in] (or any [..., D_in]) -> float32 [B, D] with
    `D = output_dim_for(D_in)`.

  Example:
    >>> head = ProjectionHead(hidden_units=[64], output_dim=16, l2_normalize=True)
    >>> head(tf.ones([2, 32]))   # [2, 16], unit rows
    >>> head.output_dim_for(32)  # 16
  """

  def __init__(self, hidden_units=(), output_dim=None, activation="relu",
               dropout=0.0, l2_normalize=False, **kwargs):
    super().__init__(**kwargs)
    self.hidden_units = [int(u) for u in hidden_units]
    self.output_dim = None if output_dim is None else int(output_dim)
    self.activation = activation
    self.dropout = float(dropout)
    self.l2_normalize = bool(l2_normalize)

    # === Layers ===
    self.hidden_layers = [
        keras.layers.Dense(u, activation=activation, name="hidden_%d" % i)
        for i, u in enumerate(self.hidden_units)]
    self.dropout_layers = [ResumableDropout(self.dropout)
                           for _ in self.hidden_units]
    self.output_layer = (None if self.output_dim is None
                         else keras.layers.Dense(self.output_dim, name="output"))

  def output_dim_for(self, input_dim):
    """D, the output width for inputs of width `input_dim`."""
    if self.output_dim is not None:
      return self.output_dim
    return self.hidden_units[-1] if self.hidden_units else int(input_dim)

  def call(self, x, training=False):
    for dense, drop in zip(self.hidden_layers, self.dropout_layers):
      x = drop(dense(x), training=training)           # [B, H]
    if self.output_layer is not None:
      x = self.output_layer(x)                        # [B, D]
    if self.l2_normalize:
      x = tf.math.l2_normalize(x, axis=-1)            # [B, D]
    return x

  def get_config(self):
    config = super().get_config()
    config.update(hidden_units=list(self.hidden_units), output_dim=self.output_dim,
                  activation=self.activation, dropout=self.dropout,
                  l2_normalize=self.l2_normalize)
    return config
