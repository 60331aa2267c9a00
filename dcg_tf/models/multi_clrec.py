"""Multi-CLRec training model (CLRec paper, section 3.2, Figure 2, Eq. 10-13)."""

import tensorflow as tf

from dcg_tf.layers.fan_out import fan_out
from dcg_tf.training_state.multi_queue import MultiQueue
from dcg_tf.losses import multi_clrec as losses
from dcg_tf.models.base import RetrievalModel
from dcg_tf.towers import multi_interest


class MultiCLRecModel(RetrievalModel):
  """Multi-queue contrastive learning with intention routing.

  Each training step (`compute_loss(batch, training=True)`):
    1. encodes the user (`user_tower.interests`: z_h, tilde w, p_{h|t}) and the
       target g(y_T) with the item tower;
    2. h+ = argmax_h p_{h|T} from the target's category (Eq. 10);
    3. updates the 1 + H queues BEFORE the loss (rules after Eq. 13): the
       targets enter Q_0, what leaves Q_0 enters Q_{h^-} with h^- routed by the
       current prototypes, what leaves Q_{h^-} is discarded;
    4. loss = L_cl (Eq. 13, negatives Q_0 ∪ Q_{h+}) + l1 L_aux1 (Eq. 10)
       + l2 L_aux2 (Eq. 11) + l3 L_aux3 (Eq. 12).
  Evaluation (`training=False`) reads the queues without updating them.

  Queue variants (Figure 1): "raw" stores item ids and re-encodes them with
  the current item tower every step (gradients flow into the negatives);
  "cached" stores representations computed when they were enqueued (no
  gradient), except that the present batch's own entries in Q_0 are the fresh
  representations, so the batch keeps its gradient (section 3.1).
  The queues are non-trainable state of this model, never of the towers.

  Use "raw" (appendix A: "We use the queue-based implementation without the
  caching mechanism on the regular tasks"). With "cached", Eq. 5's MLP_1
  item encoder (features concatenated, then shared dense layers) collapses
  the whole catalog onto one direction. A likely mechanism (not proven): only
  the B in-batch entries of Q_0 carry gradient, so every positive g(y_T) is
  pulled towards its user vector while most of the repulsion (the stale
  queue) pushes nothing; CLRec's item encoder has no shared dense layer.
  Observed on S3-Rec Beauty, H = 1, 300 steps: full-ranking HR@50 0.0032 and
  54 items served (cached) against 0.0781 and 9,743 (raw); mean item-item
  cosine 0.9993 against 0.58 (`experiments.diagnose`, docs/results/clrec.md).

  Args:
    user_tower: a MultiCLRecUserTower (needs the multi-interest training
      hooks `interests` and `item_interests`, dcg_tf.towers.multi_interest,
      and `item_routing_logits`).
    item_tower: item ids int64 [B] -> g(y) [B, D].
    num_intentions: H; must equal the user tower's.
    main_queue_size: |Q_0| (1,280, appendix B.3).
    secondary_queue_size: |Q_h| (1,280).
    queue: "raw" (variant b) or "cached" (variant c).
    temperature: rho (0.07).
    aux_weights: (l1, l2, l3), all 1 in the paper.
  """

  def __init__(self, user_tower, item_tower,
               num_intentions=16, main_queue_size=1280,
               secondary_queue_size=1280, queue="raw", temperature=0.07,
               aux_weights=(1.0, 1.0, 1.0), **kwargs):
    super().__init__(user_tower, item_tower, **kwargs)
    if queue not in ("raw", "cached"):
      raise ValueError("MultiCLRecModel: queue must be 'raw' or 'cached', got %r"
                       % (queue,))
    tower_intentions = getattr(user_tower, "num_intentions", num_intentions)
    if tower_intentions != num_intentions:
      raise ValueError("MultiCLRecModel: num_intentions=%d but the user tower "
                       "has %d" % (num_intentions, tower_intentions))
    if len(aux_weights) != 3:
      raise ValueError("MultiCLRecModel: aux_weights needs 3 values (Eq. 10, "
                       "11, 12), got %r" % (aux_weights,))
    self.num_intentions = int(num_intentions)
    self.main_queue_size = int(main_queue_size)
    self.secondary_queue_size = int(secondary_queue_size)
    self.queue = queue
    self.temperature = float(temperature)
    self.aux_weights = tuple(float(w) for w in aux_weights)
    self.queues = MultiQueue(
        self.main_queue_size, self.secondary_queue_size, self.num_intentions,
        value_dim=item_tower.embedding_dim if queue == "cached" else None,
        name="multi_queue")

  def _negatives(self, h_plus, positive, slots, training):
    """g(y') of Q_0 [Q0, D] and of Q_{h+} per example [B, Qs, D], with ids."""
    main_ids, main_values, main_valid = self.queues.main_contents()
    sec_ids, sec_values, sec_valid = self.queues.secondary_contents()
    if self.queue == "raw":
      # Variant (b): re-encode every queued item with the current item tower,
      # each distinct id once (the 1 + H queues often repeat items).
      all_ids = tf.concat([main_ids, tf.reshape(sec_ids, [-1])], 0)  # [Q0 + H Qs]
      unique_ids, position = tf.unique(all_ids)                   # [U], [Q0 + H Qs]
      encoded = tf.gather(self.item_tower(unique_ids, training=training),
                          position)                               # [Q0 + H Qs, D]
      main_values = encoded[:self.main_queue_size]                # [Q0, D]
      sec_values = tf.reshape(encoded[self.main_queue_size:],
                              [self.num_intentions,
                               self.secondary_queue_size, -1])    # [H, Qs, D]
    elif slots is not None:
      # Variant (c): the present batch's entries keep their gradient.
      main_values = tf.tensor_scatter_nd_update(
          main_values, slots[:, None], tf.cast(positive, main_values.dtype))
    sec_ids = tf.gather(sec_ids, h_plus)                          # [B, Qs]
    sec_values = tf.gather(sec_values, h_plus)                    # [B, Qs, D]
    sec_valid = tf.gather(sec_valid, h_plus)                      # [B, Qs]
    return (main_ids, main_values, main_valid), (sec_ids, sec_values, sec_valid)

  def compute_loss(self, inputs, training=False):  # pylint: disable=arguments-differ
    user = self.user_tower.interests(inputs, training=training)
    target = tf.cast(inputs["target"], tf.int64)                  # [B]
    positive = self.item_tower(target, training=training)         # [B, D]
    # One copy per consumer, gradients summed in a fixed order: without it
    # Grappler's memory optimizer sums them in run-time order and two
    # processes drift apart (dcg_tf.layers.fan_out).
    vectors_cl, vectors_aux = fan_out(user["vectors"], 2)         # [B, H, D]
    positive_cl, positive_aux, positive_queue = fan_out(positive, 3)  # [B, D]
    target_logits = self.user_tower.item_routing_logits(target)   # [B, H]
    target_logits, target_logits_balance = fan_out(target_logits, 2)
    h_plus = tf.argmax(target_logits, axis=-1)                    # [B]
    slots = None
    if training:
      update = self.queues.update(
          target, positive_queue if self.queue == "cached" else None,
          intention_fn=lambda ids: tf.stop_gradient(
              self.user_tower.item_interests(ids)))
      slots = update["slots"]
    main, secondary = self._negatives(h_plus, positive_queue, slots, training)
    cl = losses.multi_queue_contrastive(
        vectors_cl, positive_cl,
        multi_interest.target_selection(self.user_tower, user, positive_cl),
        main[1], main[2], secondary[1], secondary[2],
        temperature=self.temperature, positive_ids=target, main_ids=main[0],
        secondary_ids=secondary[0])                               # [B]
    aux1 = losses.intention_polarization_loss(target_logits)      # [B]
    aux2 = losses.intention_target_loss(vectors_aux, positive_aux, h_plus,
                                        self.temperature)         # [B]
    # pi_h over the items of the batch: valid history items and targets.
    routing = tf.concat([
        tf.reshape(user["routing"], [-1, self.num_intentions]),
        tf.nn.softmax(target_logits_balance, axis=-1)], axis=0)   # [B L + B, H]
    mask = tf.concat([tf.reshape(user["history_mask"], [-1]),
                      tf.ones_like(target, tf.bool)], axis=0)     # [B L + B]
    aux3 = losses.intention_balance_loss(routing, mask)           # []
    cl, aux1, aux2 = (tf.reduce_mean(x) for x in (cl, aux1, aux2))
    l1, l2, l3 = self.aux_weights
    # One reduction, not a chain of adds that Grappler may turn into an AddN
    # summed in run-time order (dcg_tf.layers.fan_out).
    loss = tf.reduce_sum(tf.stack([cl, l1 * aux1, l2 * aux2, l3 * aux3]))
    return {"loss": loss, "cl_loss": cl, "aux1": aux1, "aux2": aux2,
            "aux3": aux3}
