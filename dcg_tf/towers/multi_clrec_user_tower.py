"""The Multi-CLRec user encoder (CLRec paper, section 3.2, Eq. 5-9)."""

import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.feature_embedding import FeatureEmbedding
from dcg_tf.layers.fan_out import fan_out
from dcg_tf.layers.interests.intention_aggregation import IntentionAggregation
from dcg_tf.layers.interests.intention_routing import IntentionRouting
from dcg_tf.layers.interests.item_importance import ItemImportance
from dcg_tf.layers.interests.straight_through_selection import StraightThroughSelection


@keras.utils.register_keras_serializable(package="dcg_tf")
class MultiCLRecUserTower(keras.layers.Layer):
  """Multi-interest user tower with prototype routing and intention selection.

  CLRec paper (Zhou et al., KDD'21), section 3.2 and Figure 2:
    g(y_t)        the shared item embedding (Eq. 5),
    p_t           ItemImportance over [g(y_t); c_t; log(1 + time gap)] (Eq. 6),
    p_{h|t}       IntentionRouting of the category embedding c_t (Eq. 7),
    z_h           IntentionAggregation (Eq. 8),
    w, tilde w    StraightThroughSelection (Eq. 9).
  It implements the multi-interest contract (`dcg_tf.towers.multi_interest`,
  docs/design.md): at serving time (`call`) it returns the K =
  `num_serving_interests` (`max_interests`) intention vectors with the
  largest w_h, l2-normalised, as `(vectors [B, K, D], mask [B, K])`; mask is
  False where the user has fewer than K candidate intentions. `interests`
  gives all H = `interest_slots` intentions and Eq. 9's selection for
  training, `item_interests` the Eq. 7 routing of items.

  Candidate intentions (`select_occupied_only`, default False): the paper's
  Eq. 9 takes h* = argmax_h w_h over all H intentions, which is the default.
  With `select_occupied_only=True`, h* (and the serving top-K) is chosen
  among the intentions that hold at least one valid history click
  (h = argmax_h' p_{h'|t} for some t), in training and at serving alike: our
  reading of the sentence motivating Eq. 9 ("it is possible to have
  sum_t p_{h|t} p_t -> 0 for some h"). Such an empty intention's vector
  z_h = MLP_3([~0; beta_h]) is the same for every user, and a learned
  selection free to pick it settled, with linear MLP_3/MLP_4, on one such
  popularity vector for every user (S3-Rec Beauty: all users on one empty
  intention, 53-108 distinct items served); the restriction is an option
  against that, not the paper's rule.

  MLPs: the paper calls MLP_2, MLP_3 and MLP_4 "multilayer perceptrons"
  without giving their widths; the only MLP whose depth it states (appendix
  B.1.2) is "a two-layer feed forward neural network". The defaults read
  them that way: one ReLU hidden layer of 64 units (`importance_hidden_units`,
  `aggregation_hidden_units`, `selection_hidden_units` = (64,)) before the
  linear output layer. Pass () for a linear MLP_3 / MLP_4 (the defaults
  before issue 10). MLP_1 (Eq. 5) is the item encoder passed in as
  `item_embedding` (the `multi_clrec` experiment's `ItemTower`).
  `interests` returns the intermediate tensors the training losses need
  (Eq. 10-13).

  The category of an item comes from `item_categories` (catalog column,
  int [N+1], 0 = unknown), held as a non-trainable weight so that raw id ->
  category happens in the graph; the prototypes and the category table belong
  to this tower (they route history items at serving time too). The model
  routes targets and dequeued items with `item_routing_logits`.

  Args:
    item_embedding: layer mapping item ids int64 [...] to g(y) [..., d]; share
      it with the item tower so that g is one function (Eq. 5).
    item_categories: int array [N+1], the category id of each item, or None to
      restore from a checkpoint (then `num_items` is required).
    num_categories: number of category ids (the table has num_categories + 1
      rows, row 0 = unknown).
    output_dim: D, the width of z_h; equal to the item tower's output width.
    category_dim: width of c_t (default: output_dim).
    num_intentions: H (16 on public data, appendix A).
    temperature: rho of Eq. 7 and Eq. 9.
    importance_hidden_units: MLP_2's hidden widths (Eq. 6); () for linear.
    aggregation_hidden_units: MLP_3's hidden widths (Eq. 8); () for linear.
    selection_hidden_units: MLP_4's hidden widths (Eq. 9); () for linear.
    num_serving_interests: K, intention vectors returned by `call`.
    use_time_gap: add log(1 + target_timestamp - history_timestamp) to MLP_2's
      input (Eq. 6); needs those two batch fields.
    category_embedding: optional layer mapping category ids to c_t (e.g. the
      category FeatureEmbedding inside the item embedding, to share c_t with
      g as in Eq. 5; a multi-valued one, e.g. genres, is given each item's
      one ID as a list of one value, so c_t is that ID's row); default: a
      fresh `FeatureEmbedding`, normal-initialised
      (appendix B.2); category 0 (unknown) embeds to zeros and is routed
      uniformly.
    num_items: N, only used when `item_categories` is None.
    select_occupied_only: False (the paper's Eq. 9): h* over all H
      intentions; True: restrict h* (and the serving top-K) to intentions
      with at least one of the user's clicks (see above).

  Example:
    >>> tower = MultiCLRecUserTower(item_embedding, categories, 40, 64)
    >>> vectors, mask = tower({"history": h, "history_mask": m, ...})  # [B, 1, 64]
  """

  # The multi-interest contract (dcg_tf.towers.multi_interest).
  is_multi_interest = True

  def __init__(self, item_embedding, item_categories, num_categories,
               output_dim, category_dim=None, num_intentions=16,
               temperature=0.07, importance_hidden_units=(64,),
               aggregation_hidden_units=(64,), selection_hidden_units=(64,),
               num_serving_interests=1, use_time_gap=True,
               category_embedding=None, num_items=None,
               select_occupied_only=False, **kwargs):
    super().__init__(**kwargs)
    if isinstance(item_embedding, dict):
      item_embedding = keras.layers.deserialize(item_embedding)
    if isinstance(category_embedding, dict):
      category_embedding = keras.layers.deserialize(category_embedding)
    if item_categories is None:
      if num_items is None:
        raise ValueError("MultiCLRecUserTower: pass item_categories or num_items")
      item_categories = np.zeros([int(num_items) + 1], np.int64)
    item_categories = np.asarray(item_categories)
    if item_categories.ndim != 1 or not np.issubdtype(item_categories.dtype,
                                                      np.integer):
      raise ValueError("MultiCLRecUserTower: item_categories must be a 1-D int "
                       "array [N+1], got %s %s" % (item_categories.dtype,
                                                   item_categories.shape))
    if item_categories.size and (item_categories.min() < 0 or
                                 item_categories.max() > num_categories):
      raise ValueError(
          "MultiCLRecUserTower: item_categories must lie in [0, %d] "
          "(num_categories), found [%d, %d]" % (num_categories,
                                                item_categories.min(),
                                                item_categories.max()))
    if not 1 <= num_serving_interests <= num_intentions:
      raise ValueError("MultiCLRecUserTower: num_serving_interests must be in "
                       "[1, num_intentions=%d], got %r"
                       % (num_intentions, num_serving_interests))
    self.item_embedding = item_embedding
    self.num_items = int(item_categories.shape[0] - 1)
    self.num_categories = int(num_categories)
    self.output_dim = int(output_dim)
    self.category_dim = int(category_dim or output_dim)
    self.num_intentions = int(num_intentions)
    self.temperature = float(temperature)
    self.importance_hidden_units = [int(u) for u in importance_hidden_units]
    self.aggregation_hidden_units = [int(u) for u in aggregation_hidden_units]
    self.selection_hidden_units = [int(u) for u in selection_hidden_units]
    self.num_serving_interests = int(num_serving_interests)
    self.use_time_gap = bool(use_time_gap)
    self.select_occupied_only = bool(select_occupied_only)
    self.embedding_dim = self.output_dim
    self.normalized = True
    self.item_categories = self.add_weight(
        name="item_categories", shape=item_categories.shape, dtype="int64",
        initializer=keras.initializers.Constant(item_categories.astype(np.int64)),
        trainable=False)                                          # [N+1]
    self.category_embedding = category_embedding or FeatureEmbedding(
        self.num_categories + 1, self.category_dim, initializer="normal",
        name="category_embedding")
    self.importance = ItemImportance(self.importance_hidden_units,
                                     name="importance")
    self.routing = IntentionRouting(self.num_intentions, self.temperature,
                                    name="routing")
    self.aggregation = IntentionAggregation(
        self.num_intentions, self.output_dim, self.aggregation_hidden_units,
        name="aggregation")
    self.selection = StraightThroughSelection(
        self.output_dim, self.selection_hidden_units,
        temperature=self.temperature, name="selection")

  @property
  def max_interests(self):
    """K: the interest slots `call` returns (`num_serving_interests`)."""
    return self.num_serving_interests

  @property
  def interest_slots(self):
    """H: the intentions `interests` returns (`num_intentions`)."""
    return self.num_intentions

  def category_embeddings(self, item_ids):
    """c of each item: float [..., category_dim]."""
    categories = tf.gather(self.item_categories,
                           tf.cast(item_ids, tf.int64))          # [...]
    if getattr(self.category_embedding, "multi_valued", False):
      # A shared multi-valued table (e.g. genres) pools its last axis: give
      # it each item's one category ID as a list of one value.
      categories = categories[..., None]                         # [..., 1]
    return self.category_embedding(categories)                   # [..., dc]

  def item_routing_logits(self, item_ids):
    """p'_{h|y} (Eq. 7) of items from their categories: float [..., H]."""
    return self.routing.logits(self.category_embeddings(item_ids))

  def item_interests(self, item_ids):
    """h = argmax_h p_{h|y} with the current prototypes: int64 [...]."""
    return tf.argmax(self.item_routing_logits(item_ids), axis=-1)

  def interests(self, batch, training=False):
    """Runs Eq. 5-9 on a batch dict; returns the tensors the losses need.

    Returns a dict (the contract's keys first): "vectors" z [B, H, D],
    "mask" bool [B, H] (the candidate intentions h* may be; all True when
    `select_occupied_only` is False), "selection" tilde w [B, H] (Eq. 9
    straight-through one-hot), "selected" h* [B], "weights" w [B, H],
    "importance" p_t [B, L], "routing" p_{h|t} [B, L, H], "history_mask"
    [B, L].
    """
    history = tf.cast(batch["history"], tf.int64)                 # [B, L]
    mask = tf.cast(batch["history_mask"], tf.bool)                # [B, L]
    items = self.item_embedding(history, training=training)       # [B, L, d]
    categories = self.category_embeddings(history)                # [B, L, dc]
    # One copy per consumer: their gradients are summed in a fixed order
    # (dcg_tf.layers.fan_out), so training is bitwise reproducible.
    items, items_for_aggregation, items_for_pooling = fan_out(items, 3)
    categories, categories_for_routing = fan_out(categories, 2)
    features = [items, categories]
    if self.use_time_gap:
      for key in ("history_timestamp", "target_timestamp"):
        if key not in batch:
          raise KeyError("MultiCLRecUserTower(use_time_gap=True) needs batch "
                         "field %r (Eq. 6 time gap)" % key)
      gap = (tf.cast(batch["target_timestamp"], tf.int64)[:, None]
             - tf.cast(batch["history_timestamp"], tf.int64))     # [B, L]
      gap = tf.math.log1p(tf.cast(tf.maximum(gap, 0), items.dtype))
      features.append(gap[..., None])                             # [B, L, 1]
    importance = self.importance(features, mask, training=training)  # [B, L]
    routing = self.routing(categories_for_routing)                # [B, L, H]
    intentions = self.aggregation(items_for_aggregation, importance, routing,
                                  training=training)              # [B, H, D]
    intentions, intentions_for_selection = fan_out(intentions, 2)
    pooled = tf.einsum("bl,bld->bd", importance,
                       items_for_pooling)                         # [B, d]
    candidates = self.occupied_intentions(routing, mask)          # [B, H]
    selection = self.selection(pooled, intentions_for_selection,
                               candidates=candidates, training=training)
    return {"vectors": intentions, "mask": candidates,
            "selection": selection["straight_through"],
            "selected": selection["selected"], "weights": selection["weights"],
            "importance": importance, "routing": routing, "history_mask": mask}

  def occupied_intentions(self, routing, mask):
    """Candidate intentions of Eq. 9: bool [B, H].

    With `select_occupied_only`, True for h = argmax_h' p_{h'|t} of at least
    one valid click t (all True for a user without a valid click);
    otherwise all True.
    """
    if not self.select_occupied_only:
      return tf.ones_like(routing[:, 0, :], dtype=tf.bool)        # [B, H]
    hard = tf.one_hot(tf.argmax(routing, axis=-1), self.num_intentions,
                      dtype=routing.dtype)                        # [B, L, H]
    hard *= tf.cast(mask, routing.dtype)[..., None]               # [B, L, H]
    occupied = tf.reduce_sum(hard, axis=1) > 0                    # [B, H]
    return occupied | ~tf.reduce_any(occupied, axis=-1, keepdims=True)

  def call(self, batch, training=False):
    outputs = self.interests(batch, training=training)
    _, top = tf.math.top_k(outputs["weights"],
                           k=self.num_serving_interests)          # [B, K]
    vectors = tf.gather(outputs["vectors"], top, batch_dims=1)    # [B, K, D]
    vectors = tf.math.l2_normalize(vectors, axis=-1)
    # The weights are 0 outside the candidates: mask those slots out.
    mask = tf.gather(outputs["mask"], top, batch_dims=1)          # [B, K]
    return vectors, mask

  def get_config(self):
    config = super().get_config()
    config.update(
        item_embedding=keras.layers.serialize(self.item_embedding),
        item_categories=None, num_items=self.num_items,
        num_categories=self.num_categories, output_dim=self.output_dim,
        category_dim=self.category_dim, num_intentions=self.num_intentions,
        temperature=self.temperature,
        importance_hidden_units=self.importance_hidden_units,
        aggregation_hidden_units=self.aggregation_hidden_units,
        selection_hidden_units=self.selection_hidden_units,
        num_serving_interests=self.num_serving_interests,
        use_time_gap=self.use_time_gap,
        select_occupied_only=self.select_occupied_only,
        category_embedding=keras.layers.serialize(self.category_embedding))
    return config
