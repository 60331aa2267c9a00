"""MicRec's item contrastive tasks as a plug-in of any two-tower model.

Xie et al., "Multi-granularity Item-based Contrastive Recommendation"
(Tencent), sections 3.3-3.6: three auxiliary losses on the item side, added
to the model's own loss with weights lambda_1..3 (Eq. 8):

  L = L_S + lambda_1 L_fea + lambda_2 L_sem + lambda_3 L_sess.

- "fea" (Eq. 2-3): the items of the training batch (its targets). f_i^d is the
  concatenation of item i's field embeddings
  (`ItemEmbedding.field_embeddings`, `[B, F+1, D] -> [B, (F+1) D]`); its
  augmentation f~_i^d drops elements of it (`ElementDropout`, mask ratio 0.5,
  section 4.1), whole fields (field-level dropout: the field's rows set to
  zero) or values of multi-valued features before pooling (`ValueDropout`,
  categorical-feature dropout). Both go through the projector MLP_f; the
  other items of the batch are the negatives.
- "sem" (Eq. 4) and "sess" (Eq. 5): anchors, positives and negatives come
  from an auxiliary stream each (`dcg_tf.data.item_pairs.pair_dataset`:
  title neighbours or shared taxonomy values; session co-occurrences); they
  are encoded by the item tower d = DNN^d(f^d) and projected by MLP_t or
  MLP_s.

The projectors are `ProjectionHead`s owned by this layer, which the training
model holds (`RetrievalModel.add_auxiliary_task`): the item tower never
references them, so the exported towers contain no projector. Every random
draw of a step is stateless, keyed by `[seed, optimizer step]` and a salt.
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.data import item_pairs
from dcg_tf.layers.augmentations.element_dropout import ElementDropout
from dcg_tf.layers.augmentations.value_dropout import ValueDropout
from dcg_tf.layers.projection_head import ProjectionHead
from dcg_tf.losses.item_contrastive import feature_contrastive, pair_contrastive

TASKS = ("fea", "sem", "sess")
FEATURE_DROPOUTS = ("element", "field", "value")
_STREAM = "item_cl_%s"
_SALTS = {"sem": 0x53e3, "sess": 0x5e55}   # stream salts
_SALT_FEA = 0xfea


class ItemContrastiveTasks(keras.layers.Layer):
  """The feature-, semantic- and session-level item CL tasks of MicRec.

  Args:
    tasks: subset of ("fea", "sem", "sess").
    weights: dict task -> lambda (Eq. 8).
    relations: dict "sem"/"sess" -> `ItemGraph` or `SharedValues` (positives
      of each anchor), for the tasks enabled.
    anchor_probability: float [N+1], how anchors of "sem"/"sess" are drawn
      (`dcg_tf.data.item_pairs.anchor_probabilities`).
    projection_dim: output width of the projectors.
    projector_hidden_units: hidden layers of the projectors (section 5.3: one
      layer, i.e. none hidden).
    temperature: tau (section 5.3: 1).
    num_positives, num_negatives: per anchor of "sem"/"sess" (section 5.3: up
      to 50 negatives).
    feature_dropout: "element", "field" or "value" (section 3.3).
    mask_ratio: the dropout rate of the augmentation (0.5).
    positive_in_denominator: InfoNCE instead of Eq. 3-5 as written
      (`dcg_tf.losses.item_contrastive`).
    batch_size: anchors per "sem"/"sess" batch; None: the trainer's.
    seed: with the optimizer step, the key of the augmentation draws.
  """

  def __init__(self, tasks, weights, relations=None, anchor_probability=None,
               projection_dim=64, projector_hidden_units=(), temperature=1.0,
               num_positives=1, num_negatives=50, feature_dropout="element",
               mask_ratio=0.5, positive_in_denominator=False, batch_size=None,
               seed=0, **kwargs):
    super().__init__(**kwargs)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
      raise ValueError("item_cl tasks must be a non-empty subset of %s, got %s"
                       % (",".join(TASKS), list(tasks)))
    if feature_dropout not in FEATURE_DROPOUTS:
      raise ValueError("item_cl_feature_dropout must be one of %s, got %r"
                       % (FEATURE_DROPOUTS, feature_dropout))
    self.tasks = tuple(t for t in TASKS if t in tasks)
    self.weights_by_task = {t: float(weights[t]) for t in self.tasks}
    self.relations = dict(relations or {})
    missing = [t for t in self.tasks if t != "fea" and t not in self.relations]
    if missing:
      raise ValueError("item_cl tasks %s need their relations (positive pairs)"
                       % missing)
    self.anchor_probability = anchor_probability
    self.projection_dim = int(projection_dim)
    self.projector_hidden_units = [int(u) for u in projector_hidden_units]
    self.temperature = float(temperature)
    self.num_positives = int(num_positives)
    self.num_negatives = int(num_negatives)
    self.feature_dropout = feature_dropout
    self.mask_ratio = float(mask_ratio)
    self.positive_in_denominator = bool(positive_in_denominator)
    self.batch_size = None if batch_size is None else int(batch_size)
    self.seed = int(seed)

    # === Training-only layers (never reachable from the towers) ===
    self.projectors = {
        task: ProjectionHead(self.projector_hidden_units, self.projection_dim,
                             name="projector_" + task)
        for task in self.tasks}
    self.element_dropout = ElementDropout(self.mask_ratio, name="element_dropout")

  # === Inputs ===

  def auxiliary_streams(self, data, batch_size, seed, epoch):
    """`{"item_cl_sem": ..., "item_cl_sess": ...}`: anchors with their pairs."""
    return {_STREAM % task: item_pairs.pair_dataset(
        self.relations[task], self.anchor_probability,
        self.batch_size or batch_size, self.num_positives, self.num_negatives,
        seed, epoch, _SALTS[task])
            for task in self.tasks if task != "fea"}

  # === Losses ===

  def compute_loss(self, model, inputs, training=False):
    """`{"loss": sum_t lambda_t L_t, "item_cl_<t>_loss": L_t}` (Eq. 8's tail)."""
    outputs = {}
    total = 0.0
    step = _step_seed(model, self.seed)
    for task in self.tasks:
      if task == "fea":
        loss = self.feature_loss(model.item_tower, inputs["target"], step,
                                 training)
      else:
        name = _STREAM % task
        if "aux" not in inputs or name not in inputs["aux"]:
          raise ValueError("item_cl task %r needs batch['aux'][%r] (the trainer "
                           "zips in model.input_streams())" % (task, name))
        loss = self.pair_loss(task, model.item_tower, inputs["aux"][name],
                              training)
      outputs["item_cl_%s_loss" % task] = loss
      total += self.weights_by_task[task] * loss
    outputs["loss"] = total
    return outputs

  def feature_loss(self, item_tower, item_ids, seed, training=False):
    """L_fea (Eq. 2-3) over the batch's items: a scalar (the mean)."""
    ids = tf.reshape(tf.cast(item_ids, tf.int64), [-1])                # [B]
    embedding = item_tower.item_embedding
    seed = tf.random.experimental.stateless_fold_in(seed, _SALT_FEA)
    fields = embedding.field_embeddings(ids)                           # [B, F+1, D]
    if self.feature_dropout == "value" and embedding.multi_valued_lengths:
      keep = ValueDropout(self.mask_ratio, embedding.multi_valued_lengths)(
          ids, seed=seed)                                              # name -> [B, L]
      augmented = embedding.field_embeddings(ids, value_mask=keep)     # [B, F+1, D]
    elif self.feature_dropout == "field":
      drop = tf.random.stateless_uniform(tf.shape(fields)[:2], seed) < self.mask_ratio
      augmented = tf.where(drop[..., None], tf.zeros_like(fields), fields)
    else:
      augmented = self.element_dropout(fields, seed=seed)              # [B, F+1, D]
    width = len(embedding.field_names) * embedding.dim
    f = tf.reshape(fields, [-1, width])                                # [B, (F+1) D]
    f_tilde = tf.reshape(augmented, [-1, width])                       # [B, (F+1) D]
    projector = self.projectors["fea"]
    return tf.reduce_mean(feature_contrastive(
        projector(f, training=training), projector(f_tilde, training=training),
        self.temperature, item_ids=ids,
        positive_in_denominator=self.positive_in_denominator))

  def pair_loss(self, task, item_tower, pairs, training=False):
    """L_sem (Eq. 4) or L_sess (Eq. 5) on one stream element: a scalar."""
    anchor = tf.cast(pairs["anchor"], tf.int64)                        # [B]
    positive = tf.cast(pairs["positive"], tf.int64)                    # [B, P]
    negative = tf.cast(pairs["negative"], tf.int64)                    # [B, K]
    ids = tf.concat([anchor, tf.reshape(positive, [-1]),
                     tf.reshape(negative, [-1])], 0)                   # [B + BP + BK]
    unique, index = tf.unique(ids)                                     # [U], [...]
    projected = self.projectors[task](item_tower(unique, training=training),
                                      training=training)               # [U, D']
    vectors = tf.gather(projected, index)                              # [B + BP + BK, D']
    b = tf.size(anchor)
    p = tf.shape(positive)[1]
    dim = tf.shape(vectors)[1]
    anchors = vectors[:b]                                              # [B, D']
    positives = tf.reshape(vectors[b:b + b * p], [b, p, dim])          # [B, P, D']
    negatives = tf.reshape(vectors[b + b * p:], [b, -1, dim])          # [B, K, D']
    return tf.reduce_mean(pair_contrastive(
        anchors, positives, negatives, self.temperature,
        positive_mask=pairs["positive_mask"],
        negative_mask=pairs["negative_mask"],
        positive_in_denominator=self.positive_in_denominator))


def _step_seed(model, seed):
  """int64 [2]: `[seed, optimizer step]` (step 0 before an optimizer exists)."""
  optimizer = getattr(model, "optimizer", None)
  step = (tf.constant(0, tf.int64) if optimizer is None
          else tf.cast(optimizer.iterations, tf.int64))
  return tf.stack([tf.constant(seed, tf.int64), step])
