"""CLRec: queue-based contrastive learning for debiased candidate generation.

CLRec (Zhou et al., KDD'21), section 3.1 and Figure 1: the negatives of Eq. 3
come from a FIFO queue of the positives of recent batches, which follows
p_data(y) and so approximates the IPW loss of Eq. 4 without a propensity model.
Three variants (Figure 1): (a) `queue="in_batch"`; (b) `queue="raw"`: the queue
holds item ids, re-encoded by the current item tower every step (the authors'
code); (c) `queue="cached"`: the queue holds computed g(y), no gradient through
earlier batches. The present batch's positives are enqueued before the loss is
computed, so they are negatives of the other rows of the batch (with gradient)
and a queued copy of a row's own positive is masked as an accidental hit.
Optional: a MoCo key encoder filling the cached queue (Table 7) and the u2u
auxiliary task (section 4.2.2, appendix B.4).

Under a `tf.distribute` strategy with R replicas in sync (u2i only, one query
per example, `num_negatives=None`), every replica all-gathers the global
batch's targets and positives: the queue enqueues the global batch once per
step, in replica order, identically on every replica (its buffer is a
mirrored variable that each replica writes in place with the same values),
and a momentum key encoder encodes the global batch on every replica, so its
update is the same everywhere and happens once per step. With
`cross_replica_negatives` the live negatives are the global batch's rows;
without, only the replica's own (the other replicas' rows are masked), while
the queue stays global.
"""

import tensorflow as tf

from dcg_tf.training_state.momentum_encoder import MomentumEncoder
from dcg_tf.training_state.queue import FIFOQueue
from dcg_tf.losses import corrections
from dcg_tf.losses import cross_replica
from dcg_tf.losses.queue_contrastive import queue_contrastive
from dcg_tf.models.base import RetrievalModel

QUEUE_VARIANTS = ("in_batch", "raw", "cached")


def _embedding_dim(tower):
  dim = getattr(tower, "embedding_dim", None)
  if not isinstance(dim, int):
    raise ValueError("CLRecModel: %r has no int `embedding_dim` (needed for a "
                     "cached queue)" % (tower,))
  return dim


class CLRecModel(RetrievalModel):
  """Single-queue CLRec training model (u2i, optionally + u2u).

  Args:
    user_tower: batch dict -> [B, D] (e.g. `CLRecUserTower`).
    item_tower: item ids int64 [B] -> [B, D].
    queue: "in_batch" | "raw" | "cached" (Figure 1 a/b/c).
    queue_size: |Q|, 2,560 with batch 256 in the paper (appendix A).
    temperature: rho of the cosine similarity (0.07, appendix B.2).
    momentum: None, or m of a MoCo key encoder (copy of the item tower, and of
      the user tower for u2u) that fills the cached queues (Table 7). Only
      with `queue="cached"`. The present batch still uses the online towers.
      With a lazy optimizer (LazyAdam, the trainer's default) the key copies
      cost O(rows in the batch) per step (`MomentumEncoder`).
    u2u_weight: weight of the u2u loss (0 disables the task).
    u2u_queue_size: size of the u2u queue (cached user representations).
    u2u_max_after: the "after" sequence holds at most this many clicks (B.4).
    remove_accidental_hits: mask queued copies of a row's positive (the row's
      own live positive is never a negative either way).
    seed: seed of the u2u split-time sampler.
    num_negatives: None (default): a row's negatives are every live positive
      of the batch (the B targets, or with `all_positions` all P positions'
      positives) and every older valid queue slot, i.e. P - 1 + C - B before
      accidental-hit removal (about 3,800 on Beauty with all_positions, C =
      2,560). An int L caps that at exactly L per row, the sampled-softmax
      baselines' L draws: the row's L first other live positives (in batch
      order), then the newest older queue entries up to L (requires enough
      of them: queue_size >= L + 1 with one query per example). Copies of
      the row's positive are then removed, as the baselines remove theirs.
      The metric "negatives_per_row" reports the mean count after removal.
    enqueue_positions: with `all_positions`, what the queue receives each
      step. False (default): the B batch targets (each user's last training
      event with `--last_cut`), a recency-skewed sample. True: every
      position's positive (the P next items of the batch, the last C when
      P > C), so the queue follows the training events' distribution, which
      CLRec's Theorem 1 assumes of the negatives.

  Example:
    >>> model = CLRecModel(user_tower, item_tower, queue="cached")
    >>> model.compile(optimizer=LazyAdam(1e-3)); model.fit(train_batches)
  """

  def __init__(self, user_tower, item_tower, queue="raw", queue_size=2560,
               temperature=0.07, momentum=None, u2u_weight=0.0,
               u2u_queue_size=2560, u2u_max_after=10,
               remove_accidental_hits=True, seed=0, num_negatives=None,
               enqueue_positions=False, **kwargs):
    super().__init__(user_tower, item_tower, **kwargs)
    if queue not in QUEUE_VARIANTS:
      raise ValueError("CLRecModel: queue must be one of %s, got %r"
                       % (QUEUE_VARIANTS, queue))
    if momentum is not None and queue != "cached":
      raise ValueError("CLRecModel: momentum needs queue='cached' (Table 7), "
                       "got queue=%r" % queue)
    self.queue = queue
    self.queue_size = int(queue_size)
    self.temperature = float(temperature)
    self.momentum = None if momentum is None else float(momentum)
    self.u2u_weight = float(u2u_weight)
    self.u2u_queue_size = int(u2u_queue_size)
    self.u2u_max_after = int(u2u_max_after)
    self.remove_accidental_hits = bool(remove_accidental_hits)
    self.seed = int(seed)
    self.num_negatives = None if num_negatives is None else int(num_negatives)
    if self.num_negatives is not None and self.num_negatives < 1:
      raise ValueError("CLRecModel: num_negatives must be >= 1 or None, got %r"
                       % (num_negatives,))
    self.enqueue_positions = bool(enqueue_positions)
    if self.enqueue_positions and not (self.all_positions and queue != "in_batch"):
      raise ValueError("CLRecModel: enqueue_positions needs all_positions and a "
                       "queue (raw or cached), got all_positions=%r, queue=%r"
                       % (self.all_positions, queue))
    if self.all_positions and not self.remove_accidental_hits:
      raise ValueError("CLRecModel: all_positions needs remove_accidental_hits "
                       "(a position's positive is found among negatives by id)")
    # === Training-only state (never reachable from the towers) ===
    self.item_queue = None          # raw: ids; cached: representations
    self.item_id_queue = None       # cached: ids, for accidental hits
    if queue == "raw":
      self.item_queue = FIFOQueue(self.queue_size, (), "int64", name="item_queue")
    elif queue == "cached":
      self.item_queue = FIFOQueue(self.queue_size, (_embedding_dim(item_tower),),
                                  "float32", name="item_queue")
      self.item_id_queue = FIFOQueue(self.queue_size, (), "int64",
                                     name="item_id_queue")
    self.item_key_encoder = None
    self.user_key_encoder = None
    if self.momentum is not None:
      self.item_key_encoder = MomentumEncoder(item_tower, self.momentum,
                                              name="item_key_encoder")
    if self.u2u_weight > 0:
      self.u2u_queue = FIFOQueue(self.u2u_queue_size, (_embedding_dim(user_tower),),
                                 "float32", name="u2u_queue")
      self.u2u_id_queue = FIFOQueue(self.u2u_queue_size, (), "int64",
                                    name="u2u_id_queue")
      self.split_rng = tf.random.Generator.from_seed(self.seed)
      if self.momentum is not None:
        self.user_key_encoder = MomentumEncoder(user_tower, self.momentum,
                                                name="user_key_encoder")

  # --- queues -------------------------------------------------------------

  @staticmethod
  def _enqueue_then_read(queue, values, batch_size, training):
    """Enqueues `values` (when training), then returns (buffer, valid).

    The slots this batch occupies (or would occupy, at evaluation) are marked
    invalid: the caller puts the present batch's live tensors (with gradient)
    in front of the buffer instead, so the negatives are exactly the queue
    after the enqueue.
    """
    slots = (queue.pointer + tf.range(batch_size, dtype=tf.int64)) % queue.capacity
    if training:
      queue.enqueue(values)
    buffer, valid = queue.contents()                              # [C, ...], [C]
    present = tf.scatter_nd(slots[:, None], tf.ones_like(slots, tf.int32),
                            [queue.capacity]) > 0                 # [C]
    return buffer, tf.logical_and(valid, tf.logical_not(present))

  def _item_negatives(self, target, positive, training):
    """Returns (negatives [Q', D], valid [Q'], ids [Q']) for Eq. 3."""
    batch_size = tf.shape(target, out_type=tf.int64)[0]
    ones = tf.ones_like(target, tf.bool)                           # [B]
    if self.queue == "in_batch":
      return positive, ones, target
    if self.queue == "raw":
      ids, valid = self._enqueue_then_read(self.item_queue, target, batch_size,
                                           training)               # [C]
      encoded = self.item_tower(ids, training=training)            # [C, D]
      return (tf.concat([positive, encoded], 0), tf.concat([ones, valid], 0),
              tf.concat([target, ids], 0))
    if self.item_key_encoder is not None:
      keys = self.item_key_encoder(target)                         # [B, D]
    else:
      keys = tf.stop_gradient(positive)                            # [B, D]
    cached, valid = self._enqueue_then_read(self.item_queue, keys, batch_size,
                                            training)              # [C, D]
    ids, _ = self._enqueue_then_read(self.item_id_queue, target, batch_size,
                                     training)                     # [C]
    return (tf.concat([positive, cached], 0), tf.concat([ones, valid], 0),
            tf.concat([target, ids], 0))

  def _hit_ids(self, positive_ids, negative_ids, num_live=None):
    """Ids for `queue_contrastive`'s masking, present batch first in negatives.

    With accidental-hit removal: the real ids. Without: row b's own live slot
    must still be excluded (it is the numerator, not a negative), so rows get
    ids -1..-B, their live slots the same, and queue slots id 0. Under a
    strategy (`num_live` = G, the global batch in front of the negatives)
    row b of replica r is global row r B + b.
    """
    if self.remove_accidental_hits:
      return positive_ids, negative_ids
    batch_size = tf.shape(positive_ids, out_type=tf.int64)[0]
    if num_live is None:
      rows = -1 - tf.range(batch_size, dtype=tf.int64)              # [B]
      live = rows
    else:
      rows = -1 - cross_replica.global_rows(batch_size)             # [B]
      live = -1 - tf.range(num_live, dtype=tf.int64)                # [G]
    queued = tf.zeros(tf.shape(negative_ids, out_type=tf.int64)[0]
                      - tf.shape(live, out_type=tf.int64)[0], tf.int64)  # [Q' - G]
    return rows, tf.concat([live, queued], 0)

  def _check_distributable(self):
    unsupported = [name for name, used in (
        ("all_positions", self.all_positions),
        ("num_negatives", self.num_negatives is not None),
        ("u2u_weight", self.u2u_weight > 0)) if used]
    if unsupported:
      raise ValueError(
          "CLRecModel: %s not supported yet under a tf.distribute strategy with "
          "several replicas (docs/scale.md); train on one device"
          % ", ".join(unsupported))

  def _cap_negatives(self, valid, num_live):
    """Per-row mask [P, P + C]: `num_negatives` candidates per row.

    Columns are the P live positives (row r's own positive is column r,
    removed later as an accidental hit), then the C queue slots. Row r keeps
    its own column, its first `num_negatives` other live columns, and the
    newest valid queue entries that fill the rest.
    """
    cap = tf.constant(self.num_negatives, tf.int32)
    live = tf.range(num_live)                                      # [P]
    others = live[None, :] - tf.cast(live[None, :] > live[:, None], tf.int32)
    keep_live = tf.logical_or(live[None, :] == live[:, None],
                              others < cap)                        # [P, P]
    room = cap - tf.minimum(num_live - 1, cap)                     # []
    queue_valid = valid[num_live:]                                 # [C]
    if self.queue == "in_batch":
      keep_queue = queue_valid                                     # [0]
    else:
      capacity = self.item_queue.capacity
      age = (self.item_queue.pointer - 1 - tf.range(capacity, dtype=tf.int64)
             ) % capacity                                          # [C] 0 = newest
      by_age = tf.argsort(age)                                     # [C]
      newer = tf.cumsum(tf.cast(tf.gather(queue_valid, by_age), tf.int32),
                        exclusive=True)                            # [C] by age
      rank = tf.scatter_nd(tf.cast(by_age[:, None], tf.int64), newer,
                           [capacity])                             # [C] by slot
      keep_queue = tf.logical_and(queue_valid, rank < room)        # [C]
    keep_queue = tf.broadcast_to(keep_queue[None, :],
                                 [num_live, tf.shape(keep_queue)[0]])  # [P, C]
    return tf.concat([keep_live, keep_queue], axis=1)              # [P, P + C]

  # --- u2u ----------------------------------------------------------------

  def split_sequences(self, batch):
    """Splits history + target at a sampled time (u2u, appendix B.4).

    For a row with n >= 1 history clicks, the full sequence s_0..s_n (s_n =
    the target) is cut at a uniform k in [1, n]: "before" = s_0..s_{k-1}
    (query time: s_k's time), "after" = s_k..s_{min(k + A, n + 1) - 1}, A =
    `u2u_max_after` (query time: its last click's time). Both are
    left-aligned [B, L] batches. Rows with n = 0 are invalid.

    Returns:
      (before batch, after batch, row_valid bool [B]).
    """
    history = tf.cast(batch["history"], tf.int64)                  # [B, L]
    mask = tf.cast(batch["history_mask"], tf.bool)                 # [B, L]
    times = tf.cast(batch["history_timestamp"], tf.int64)          # [B, L]
    target = tf.cast(batch["target"], tf.int64)                    # [B]
    target_time = tf.cast(batch["target_timestamp"], tf.int64)     # [B]
    max_len = tf.shape(history, out_type=tf.int64)[1]
    n = tf.reduce_sum(tf.cast(mask, tf.int64), axis=1)             # [B]
    positions = tf.range(max_len + 1, dtype=tf.int64)[None, :]     # [1, L+1]
    pad = tf.zeros_like(history[:, :1])                            # [B, 1]
    sequence = tf.where(positions < n[:, None],
                        tf.concat([history, pad], 1),
                        tf.where(positions == n[:, None], target[:, None], 0))
    sequence_time = tf.where(positions < n[:, None],
                             tf.concat([times, pad], 1),
                             tf.where(positions == n[:, None],
                                      target_time[:, None], 0))   # [B, L+1]
    uniform = self.split_rng.uniform(tf.shape(n), dtype=tf.float32)
    k = 1 + tf.cast(tf.floor(uniform * tf.cast(n, tf.float32)), tf.int64)
    k = tf.clip_by_value(k, 1, tf.maximum(n, 1))                   # [B]
    row_valid = n >= 1

    def take(values, index):                                       # [B, L+1], [B, X]
      return tf.gather(values, tf.minimum(index, max_len), batch_dims=1)

    before_mask = positions[:, :-1] < k[:, None]                   # [B, L]
    before = {
        "history": tf.where(before_mask, history, 0),
        "history_mask": before_mask,
        "history_timestamp": tf.where(before_mask, times, 0),
        "target_timestamp": take(sequence_time, k[:, None])[:, 0],
    }
    if "user" in batch:
      before["user"] = batch["user"]
    length = tf.minimum(tf.cast(self.u2u_max_after, tf.int64), max_len)
    index = k[:, None] + positions[:, :-1]                          # [B, L]
    after_mask = tf.logical_and(index <= n[:, None],
                                positions[:, :-1] < length)         # [B, L]
    last = tf.minimum(k + length - 1, n)                            # [B]
    after = {
        "history": tf.where(after_mask, take(sequence, index), 0),
        "history_mask": after_mask,
        "history_timestamp": tf.where(after_mask, take(sequence_time, index), 0),
        "target_timestamp": take(sequence_time, last[:, None])[:, 0],
    }
    if "user" in batch:
      after["user"] = batch["user"]
    return before, after, row_valid

  def _u2u_loss(self, batch, training):
    if "user" not in batch:
      raise KeyError("CLRecModel: u2u needs the `user` field of the batch "
                     "(it has: %s)" % ", ".join(sorted(batch)))
    before, after, row_valid = self.split_sequences(batch)
    query = self.user_tower(before, training=training)             # [B, D]
    positive = self.user_tower(after, training=training)           # [B, D]
    users = tf.where(row_valid, tf.cast(batch["user"], tf.int64), -1)  # [B]
    if self.user_key_encoder is not None:
      keys = self.user_key_encoder(after)                          # [B, D]
    else:
      keys = tf.stop_gradient(positive)
    batch_size = tf.shape(users, out_type=tf.int64)[0]
    cached, valid = self._enqueue_then_read(self.u2u_queue, keys, batch_size,
                                            training)              # [C, D]
    ids, _ = self._enqueue_then_read(self.u2u_id_queue, users, batch_size,
                                     training)                     # [C]
    negatives = tf.concat([positive, cached], 0)                   # [B + C, D]
    negative_ids = tf.concat([users, ids], 0)                      # [B + C]
    negatives_valid = tf.concat([row_valid, valid], 0) & (negative_ids >= 0)
    positive_ids, negative_ids = self._hit_ids(users, negative_ids)
    loss = queue_contrastive(query, positive, negatives, negatives_valid,
                             positive_ids, negative_ids, self.temperature)  # [B]
    weight = tf.cast(row_valid, loss.dtype)
    return tf.reduce_sum(loss * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)

  # --- training -------------------------------------------------------------

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    target = tf.cast(inputs["target"], tf.int64)                   # [B]
    # One query per example, or one per history position (all_positions): the
    # queue still receives the batch's B targets, its positives (section 3.1).
    query, positive_ids = self.queries_and_targets(inputs, training)  # [P, D], [P]
    positive = self.item_tower(positive_ids, training=training)    # [P, D]
    num_live = None                     # the gathered batch, under a strategy
    if cross_replica.num_replicas() > 1:
      self._check_distributable()       # refuses all_positions (and so enqueue_positions)
    if self.enqueue_positions:
      # The queue receives the positions' positives (the last C of them).
      enqueued = positive_ids[-self.queue_size:]                   # [E]
      negatives, valid, ids = self._item_negatives(
          enqueued, positive[-self.queue_size:], training)          # [E + C]
    else:
      batch_positive = (self.item_tower(target, training=training)
                        if self.all_positions else positive)       # [B, D]
      if cross_replica.num_replicas() > 1:
        local_size = tf.shape(target, out_type=tf.int64)[0]
        target = cross_replica.all_gather(target)                  # [G]
        batch_positive = cross_replica.all_gather(batch_positive)  # [G, D]
        num_live = tf.shape(target, out_type=tf.int64)[0]
      enqueued = target                                            # [B] or [G]
      negatives, valid, ids = self._item_negatives(target, batch_positive,
                                                   training)       # [B + C]
      if num_live is not None and not self.cross_replica_negatives:
        # Per-replica negatives: the other replicas' live rows are masked (the
        # queue, which they entered, stays global).
        mine = tf.scatter_nd(cross_replica.global_rows(local_size)[:, None],
                             tf.ones([local_size], tf.bool), [num_live])  # [G]
        rest = tf.ones(tf.shape(valid, out_type=tf.int64)[0] - num_live, tf.bool)
        valid = tf.logical_and(valid, tf.concat([mine, rest], 0))  # [G + C]
    if self.all_positions:
      # Every position's positive is also a live negative of the other rows
      # (Figure 1a within the batch), in place of the enqueued items' live
      # copies; otherwise items that are only ever interior positives would
      # never be pushed away from anyone and turn into hubs.
      b = tf.shape(enqueued)[0]
      negatives = tf.concat([positive, negatives[b:]], 0)          # [P + C, D]
      valid = tf.concat([tf.ones_like(positive_ids, tf.bool), valid[b:]], 0)
      ids = tf.concat([positive_ids, ids[b:]], 0)                  # [P + C]
    if self.num_negatives is not None:
      valid = self._cap_negatives(valid, tf.shape(positive_ids)[0])  # [P, P + C]
    positive_ids, negative_ids = self._hit_ids(positive_ids, ids, num_live)
    u2i, logits, _ = queue_contrastive(
        query, positive, negatives, valid, positive_ids, negative_ids,
        self.temperature, return_logits=True)                      # [P], [P, 1 + P + C]
    u2i = tf.reduce_mean(u2i)
    outputs = {"u2i_loss": u2i, "negatives_per_row": tf.reduce_mean(
        corrections.unmasked_negatives(logits))}
    total = u2i
    if self.u2u_weight > 0:
      u2u = self._u2u_loss(inputs, training)
      outputs["u2u_loss"] = u2u
      total = total + self.u2u_weight * u2u
    outputs["loss"] = total
    return outputs

  def before_apply_gradients(self, grads_and_vars):
    for encoder in (self.item_key_encoder, self.user_key_encoder):
      if encoder is not None:
        encoder.catch_up(grads_and_vars, self.optimizer)

  def after_train_step(self):
    for encoder in (self.item_key_encoder, self.user_key_encoder):
      if encoder is not None:
        encoder.update()
