"""Keras multi-head attention whose attention dropout resumes exactly."""

from dcg_tf._keras import keras
from dcg_tf.layers.resumable_dropout import ResumableDropout


@keras.utils.register_keras_serializable(package="dcg_tf")
class ResumableMultiHeadAttention(keras.layers.MultiHeadAttention):
  """`keras.layers.MultiHeadAttention` with `ResumableDropout` on its weights.

  Scaled dot-product attention with H heads (Vaswani et al., NeurIPS'17,
  section 3.2, Eq. 1): the same layer, arguments, weights and checkpoint keys
  as Keras's, except that the dropout on the attention probabilities draws
  its masks from the checkpointed global `tf.random.Generator`
  (`dcg_tf.layers.resumable_dropout.ResumableDropout`), so a resumed training
  run drops the same attention weights as the uninterrupted one.

  Args and call: those of `keras.layers.MultiHeadAttention`.

  Example:
    >>> att = ResumableMultiHeadAttention(num_heads=2, key_dim=8, dropout=0.2)
    >>> att(x, x, attention_mask=mask, training=True)   # [B, L, D]
  """

  def _build_attention(self, rank):
    super()._build_attention(rank)
    # The Keras dropout layer holds no variables: replacing it changes no
    # checkpoint key.
    self._dropout_layer = ResumableDropout(self._dropout, name="attention_dropout")
