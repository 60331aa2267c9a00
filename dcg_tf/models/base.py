"""Base class of every training model: towers + losses + training-only state."""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.losses import cross_replica


class RetrievalModel(keras.Model):
  """Training wrapper around an exportable user tower and item tower.

  Subclasses implement `compute_loss(inputs, training)` and may own
  training-only state (queues, momentum encoders, prototypes) as attributes:
  it is tracked for checkpoints but is not reachable from `user_tower` or
  `item_tower`, so it never enters an export (docs/design.md).

  Args:
    user_tower: maps a batch dict to [B, D] (or `(vectors [B, K, D], mask [B, K])`
      for multi-interest towers).
    item_tower: maps item ids int64 [B] to [B, D].
    all_positions: train every history position on its next event at once
      (SASRec's training; needs a user tower with `sequence_output`), instead
      of one query per example. See `queries_and_targets`.
  """

  # Under a tf.distribute strategy with several replicas in sync: True, the
  # in-batch and queue negatives are the global batch's
  # (`dcg_tf.losses.cross_replica`); False, each replica's own rows only. The
  # trainer sets it (`TrainerConfig.negatives`); one replica ignores it.
  cross_replica_negatives = True

  def __init__(self, user_tower, item_tower, all_positions=False, **kwargs):
    super().__init__(**kwargs)
    self.user_tower = user_tower
    self.item_tower = item_tower
    self.all_positions = bool(all_positions)
    if self.all_positions and not hasattr(user_tower, "sequence_output"):
      raise ValueError("all_positions needs a user tower with sequence_output "
                       "(e.g. the sasrec encoder), got %s" % type(user_tower).__name__)

  def queries_and_targets(self, inputs, training=False):
    """Query embeddings and the item ids they must retrieve.

    Returns `(queries [B, D], inputs["target"] [B])`, or with `all_positions`
    one row per valid history position: position t of the causal history
    predicts the next event `history[t + 1]`, and the last valid position
    predicts `target` (`(queries [P, D], ids [P])`, P = valid positions).
    """
    if not self.all_positions:
      return (self.user_tower(inputs, training=training),
              tf.cast(inputs["target"], tf.int64))
    sequence = self.user_tower.sequence_output(inputs, training=training)  # [B, L, D]
    history = tf.cast(inputs["history"], tf.int64)                         # [B, L]
    mask = tf.cast(inputs["history_mask"], tf.bool)                        # [B, L]
    count = tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)                 # [B]
    shifted = tf.concat([history[:, 1:], tf.zeros_like(history[:, :1])], 1)  # [B, L]
    positions = tf.range(tf.shape(history, out_type=tf.int64)[1])[None]    # [1, L]
    next_items = tf.where(positions == count[:, None] - 1,
                          tf.cast(inputs["target"], tf.int64)[:, None], shifted)  # [B, L]
    return tf.boolean_mask(sequence, mask), tf.boolean_mask(next_items, mask)  # [P, D], [P]

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    """Returns a dict of scalars with at least "loss" (the total to minimise)."""
    raise NotImplementedError

  # === Plug-in auxiliary tasks ===

  def add_auxiliary_task(self, task, name):
    """Adds a plug-in task (e.g. MicRec's item contrastive tasks) to this model.

    The task is training-only: it is tracked as attribute `name` (its weights,
    such as projectors, checkpoint with the model) but never reachable from
    the towers, so it never enters an export. It provides
    `auxiliary_streams(data, batch_size, seed, epoch) -> {name: Dataset}` and
    `compute_loss(model, inputs, training) -> dict` whose "loss" is added to
    this model's (`total_loss`); its other entries are logged.
    """
    if hasattr(self, name):
      raise ValueError("%s already has an attribute %r; give the auxiliary task "
                       "another name" % (type(self).__name__, name))
    setattr(self, name, task)
    self._auxiliary_task_names = getattr(self, "_auxiliary_task_names", ()) + (name,)

  @property
  def auxiliary_tasks(self):
    return [getattr(self, name)
            for name in getattr(self, "_auxiliary_task_names", ())]

  def input_streams(self, data, batch_size, seed, epoch):
    """`auxiliary_streams` plus those of the plug-in tasks: what the trainer zips."""
    streams = dict(self.auxiliary_streams(data, batch_size, seed, epoch))
    for task in self.auxiliary_tasks:
      for name, stream in task.auxiliary_streams(data, batch_size, seed,
                                                 epoch).items():
        if name in streams:
          raise ValueError("two auxiliary streams are named %r" % name)
        streams[name] = stream
    return streams

  def total_loss(self, inputs, training=False):
    """`compute_loss` plus the plug-in tasks' losses (their sum is "loss")."""
    outputs = self.compute_loss(inputs, training=training)
    for task in self.auxiliary_tasks:
      extra = dict(task.compute_loss(self, inputs, training=training))
      outputs = dict(outputs, loss=outputs["loss"] + extra.pop("loss"), **extra)
    return outputs

  def before_apply_gradients(self, grads_and_vars):
    """Hook run just before the optimizer step, given its (gradient, variable)
    pairs: e.g. a momentum encoder catches up the rows the step will change."""
    return None

  def after_train_step(self):
    """Hook run after the optimizer step (momentum updates and the like)."""
    return None

  def auxiliary_streams(self, data, batch_size, seed, epoch):
    """Extra inputs zipped into every training batch of `epoch`.

    Returns a dict name -> `tf.data.Dataset`, e.g. the SSL paper's items drawn
    uniformly from the catalog (`dcg_tf.data.pipeline.item_dataset`). Element
    `k` of each stream arrives with main batch `k` of the epoch as
    `batch["aux"][name]` (`dcg_tf.training.trainer.training_dataset`; a model
    without streams gets no "aux" key). Each stream must be a pure function
    of `(data, batch_size, seed, epoch)`, with randomness from stateless ops
    keyed by them (never the global generator), and at least as long as the
    epoch, so that a run resumed mid-epoch skips the same number of elements
    of every stream and lands on the same inputs (docs/design.md, "tf.data
    batches"). Default: no streams.

    Args:
      data: the `ProcessedDataset` being trained on.
      batch_size: the trainer's batch size B (a stream may use its own).
      seed: the run's seed.
      epoch: the training epoch (0-based).
    """
    del data, batch_size, seed, epoch
    return {}

  def training_callbacks(self, data, seed):
    """Epoch-level callbacks (`dcg_tf.training.callbacks.EpochCallback`).

    E.g. PCL's prototype refresh at the start of every epoch. Their state is
    non-trainable variables of this model, assigned in place. The trainer
    (`dcg_tf.training.trainer.Trainer`) runs them; so does `model.fit(...,
    callbacks=model.training_callbacks(data, seed))`, which however neither
    zips `auxiliary_streams` nor resumes mid-epoch. Default: none.

    Args:
      data: the `ProcessedDataset` being trained on (callbacks may read it).
      seed: the run's seed (randomness keyed by `(seed, epoch)`).
    """
    del data, seed
    return []

  def gather_negatives(self, tensor):
    """The global batch of `tensor` [b, ...] when negatives are cross-replica.

    `dcg_tf.losses.cross_replica.all_gather` ([R b, ...], replica order)
    under a strategy with R > 1 replicas in sync and
    `cross_replica_negatives`; otherwise `tensor` itself (one device, or
    per-replica negatives).
    """
    if not self.cross_replica_negatives:
      return tensor
    return cross_replica.all_gather(tensor)

  def train_step(self, data):
    """One optimizer step; under a strategy, one replica's part of it.

    With R > 1 replicas in sync each replica's loss is scaled by 1/R and the
    gradients are summed across replicas before the hooks and the optimizer
    see them, so every replica applies the same global gradient (that of the
    mean of the replicas' losses: the global batch's loss for equal splits)
    and writes the same values into the training-only state (queues,
    momentum encoders: mirrored variables each replica updates in place).
    With one replica the step is the plain one.
    """
    replicas = cross_replica.num_replicas()
    with tf.GradientTape() as tape:
      outputs = self.total_loss(data, training=True)
      loss = outputs["loss"]
      if self.losses:
        loss = loss + tf.add_n(self.losses)
      scaled = loss if replicas == 1 else loss / replicas
    variables = self.trainable_variables
    gradients = tape.gradient(scaled, variables)
    grads_and_vars = [(g, v) for g, v in zip(gradients, variables) if g is not None]
    if replicas > 1:
      context = tf.distribute.get_replica_context()
      summed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                  [g for g, _ in grads_and_vars])
      grads_and_vars = [(g, v) for g, (_, v) in zip(summed, grads_and_vars)]
    self.before_apply_gradients(grads_and_vars)
    if replicas > 1:
      self.optimizer.apply_gradients(grads_and_vars,
                                     experimental_aggregate_gradients=False)
    else:
      self.optimizer.apply_gradients(grads_and_vars)
    self.after_train_step()
    return dict(outputs, loss=loss)

  def test_step(self, data):
    return self.total_loss(data, training=False)

  def call(self, inputs, training=False):
    """The user embedding(s) for a batch: what retrieval queries with."""
    return self.user_tower(inputs, training=training)
