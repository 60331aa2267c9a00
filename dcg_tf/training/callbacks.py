"""Epoch-level training state: refreshed once per epoch, resumed exactly.

PCL-AISL (Wang et al., CIKM'22, section 2.3.2 "Prototype Augmented Module")
clusters the key encoder's item embeddings by k-means into prototypes and
trains against them; the clusters are recomputed from the current weights as
training proceeds (once per epoch here). Such state is computed from the model
and the data between steps, not by a gradient, and the traced `train_step`
reads it. `EpochCallback` is the one way to hold it:

- The state is non-trainable `tf.Variable`s of the training model (attributes
  of the `RetrievalModel`, so `tf.train.Checkpoint(model=...)` saves them and
  the towers never reach them), written with `.assign`: `train_step` is traced
  once and reads those variables, so a new Python object would never be seen.
- `refreshed_epoch`, an int64 variable of the model (-1 before any refresh),
  records the epoch whose refresh has run. `on_epoch_begin(e)` refreshes only
  when it is not `e` and then sets it to `e`. Saved with the state in the same
  checkpoint, it makes a resume neither repeat nor skip a refresh: a run
  resumed in the middle of epoch `e` (checkpoint written after the refresh)
  does not refresh again, and one resumed at the boundary (checkpoint written
  at the end of epoch `e - 1`) refreshes once.
- `refresh` must be a function of the model's weights, the data, `seed` and
  `epoch` (random choices from stateless ops keyed by `(seed, epoch)`), so that
  a resumed run refreshes to the same values as an uninterrupted one.

`dcg_tf.training.trainer.Trainer` runs the callbacks of
`RetrievalModel.training_callbacks(data, seed)`; as Keras callbacks they also
run under `model.fit(..., callbacks=model.training_callbacks(data, seed))`.
"""

from dcg_tf._keras import keras


class EpochCallback(keras.callbacks.Callback):
  """Refreshes epoch-level state of the training model at each epoch start.

  Subclasses implement `refresh(epoch)`, reading `self.model`, `self.data` and
  `self.seed`, and assigning the results into variables of the model.

  Args:
    data: the `ProcessedDataset` being trained on.
    refreshed_epoch: int64 scalar `tf.Variable(-1, trainable=False)`, an
      attribute of the training model (checked in `set_model`), recording the
      epoch whose refresh has run.
    seed: int, the run's seed: key random choices by `(seed, epoch)`.

  Example:
    >>> class CatalogMean(EpochCallback):
    ...   def refresh(self, epoch):
    ...     vectors = self.model.item_tower(tf.range(1, self.data.num_items + 1))
    ...     self.model.catalog_mean.assign(tf.reduce_mean(vectors, 0))  # [D]
  """

  def __init__(self, data, refreshed_epoch, seed=0):
    super().__init__()
    self.data = data
    self.refreshed_epoch = refreshed_epoch
    self.seed = seed

  def set_model(self, model):
    if not any(v is self.refreshed_epoch for v in model.variables):
      raise ValueError(
          "%s: refreshed_epoch (%s) is not a variable of the training model %s, so "
          "checkpoints would not record which refresh has run; create it in the "
          "model's __init__ as an attribute: tf.Variable(-1, dtype=tf.int64, "
          "trainable=False)" % (type(self).__name__, self.refreshed_epoch.name,
                                type(model).__name__))
    super().set_model(model)

  def on_epoch_begin(self, epoch, logs=None):
    """Runs `refresh(epoch)` unless the (restored) state already holds it."""
    del logs
    if int(self.refreshed_epoch.numpy()) == epoch:
      return
    self.refresh(epoch)
    self.refreshed_epoch.assign(epoch)

  def refresh(self, epoch):
    """Recomputes the state for `epoch` and `.assign`s it into the model."""
    raise NotImplementedError
