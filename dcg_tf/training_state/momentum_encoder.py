"""Momentum (MoCo) copy of a tower: a key encoder that follows the online one.

MoCo (He et al., CVPR'20), Eq. 2: theta_k <- m theta_k + (1 - m) theta_q.
CLRec (Zhou et al., KDD'21), Table 7 and appendix B.4: the cached queue may be
filled by a momentum key encoder, m in {0.9, 0.99, 0.999, 0.9999}.

The update costs what the batch touches, not the catalog:
- the key copy's `ItemFeatures` layers (the catalog arrays) are the online
  tower's own layers, so they are neither copied nor averaged;
- an embedding table (a weight whose gradient is a `tf.IndexedSlices`) is
  averaged lazily. While the optimizer leaves online row r unchanged, d steps
  of Eq. 2 give k_r <- m^d k_r + (1 - m^d) o_r in closed form, so a key row is
  brought up to date only when it is read by the key tower or about to be
  changed by the optimizer, d steps after its last update (`last_steps`).
"""

import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.layers.embeddings.item_features import ItemFeatures
from dcg_tf.layers.nested_config import NestedLayerConfig
from dcg_tf.optimizers import LazyAdagrad, LazyAdam


def _ordered_weights(layer):
  """Weights in creation order per sublayer, whatever the `trainable` flags.

  (`layer.weights` lists trainable weights first, and the key copy is frozen,
  so its order would differ from the online tower's.)
  """
  # pylint: disable=protected-access
  seen, ordered = set(), []
  for sublayer in layer._flatten_layers(include_self=True, recursive=True):
    for weight in sublayer._trainable_weights + sublayer._non_trainable_weights:
      if id(weight) not in seen:
        seen.add(id(weight))
        ordered.append(weight)
  return ordered


def updates_only_rows_in_gradient(optimizer):
  """True when `optimizer` leaves rows absent from a sparse gradient unchanged.

  That holds for `dcg_tf.optimizers.LazyAdam` / `LazyAdagrad` and for keras
  SGD without momentum, as long as neither weight decay nor the optimizer's
  own EMA (`use_ema`) rewrites every row. Keras Adam, Adagrad and SGD with
  momentum move every row at every step.
  """
  if getattr(optimizer, "use_ema", False) or getattr(optimizer, "weight_decay", None):
    return False
  if isinstance(optimizer, (LazyAdam, LazyAdagrad)):
    return True
  return (isinstance(optimizer, keras.optimizers.SGD)
          and float(optimizer.momentum) == 0.0)


def _share_item_features(online, key):
  """Makes every `ItemFeatures` layer of `key` the online tower's own layer."""
  # pylint: disable=protected-access
  online_layers = list(online._flatten_layers(include_self=True, recursive=True))
  key_layers = list(key._flatten_layers(include_self=True, recursive=True))
  if len(online_layers) != len(key_layers):
    raise ValueError("MomentumEncoder: the key copy has %d layers but the online "
                     "tower %d" % (len(key_layers), len(online_layers)))
  replace = {id(k): o for o, k in zip(online_layers, key_layers)
             if isinstance(o, ItemFeatures) and isinstance(k, ItemFeatures)}
  for layer in key_layers:
    for name, value in list(vars(layer).items()):
      if not name.startswith("_") and id(value) in replace:
        setattr(layer, name, replace[id(value)])
  online_ids = {id(o) for o in online_layers}
  left = [k.name for k in key._flatten_layers(include_self=True, recursive=True)
          if isinstance(k, ItemFeatures) and id(k) not in online_ids]
  if left:
    raise ValueError("MomentumEncoder: could not share the catalog layers %s of "
                     "the key copy with the online tower (hold each ItemFeatures "
                     "in a public attribute of its parent layer)" % left)


@keras.utils.register_keras_serializable(package="dcg_tf")
class MomentumEncoder(NestedLayerConfig, keras.layers.Layer):
  """A frozen copy of `online` whose weights track it by exponential averaging.

  The copy has no trainable weights and its outputs carry no gradient; only
  `catch_up` (before the optimizer step), `update` (after it, in the training
  model's `after_train_step`) and reads of rows by `call` change it. Its
  weights, `initialized`, the number of updates `step` and each embedding
  table's `last_steps` are checkpointed with the model that owns it. The online
  tower is referenced but not tracked, so its weights are neither duplicated in
  this layer's weights nor in checkpoints; the catalog arrays (`ItemFeatures`
  layers) are the online tower's own, shared by the copy.

  On the first call the copy is built on the same inputs and set equal to the
  online tower (MoCo's initialisation); this happens once, also inside a
  `tf.function`, because it is guarded by the `initialized` variable.

  Cost per step (what the key tower returns is exactly Eq. 2 applied at every
  step to every weight, up to float rounding):
  - dense weights (Dense kernels, ...): Eq. 2 at every step;
  - other non-trainable weights (statistics): copied at every step;
  - embedding tables (weights whose gradient is a `tf.IndexedSlices`, found
    by one gradient of the online tower at the first call), with a lazy
    optimizer (`lazy`): row r is caught up as k_r <- m^d k_r + (1 - m^d) o_r,
    d = `step - last_steps[r]`, when the key tower reads it (`call` first
    finds the rows it will read from the indices of a gradient of one extra
    forward pass) and, with the online row's OLD value, just before the
    optimizer changes it (`catch_up`, from the gradients' indices); `update`
    then gives the touched rows one step of Eq. 2. Cost O(rows in the batch).
    Exact only if the optimizer leaves online rows absent from the gradient
    unchanged: with a dense optimizer (keras Adam: its moments move every row
    at every step) the tables get Eq. 2 on every row at every step, O(catalog).

  Args:
    online: the online tower (a Keras layer); the copy is
      `keras.layers.deserialize(keras.layers.serialize(online))` unless
      `key_factory` is given.
    momentum: m in [0, 1).
    key_factory: optional zero-argument callable returning a fresh tower of the
      same architecture as `online` (its weights must match `online.weights`
      one to one).
    lazy: None (default): lazy tables iff the optimizer given to `catch_up`
      passes `updates_only_rows_in_gradient`; True: lazy with any optimizer
      (the caller vouches that it leaves absent rows unchanged); False: dense
      Eq. 2 on every row at every step.

  Call args:
    inputs: whatever `online` takes.

  Returns:
    `stop_gradient(key_tower(inputs))`.

  Example:
    >>> keys = MomentumEncoder(item_tower, momentum=0.999)
    >>> k = keys(item_ids)          # [B, D], no gradient
    >>> keys.catch_up(grads_and_vars, optimizer)   # before apply_gradients
    >>> optimizer.apply_gradients(grads_and_vars)
    >>> keys.update()               # after the optimizer step
  """

  NESTED_LAYERS = ("online",)

  def __init__(self, online, momentum, key_factory=None, lazy=None, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= float(momentum) < 1.0:
      raise ValueError("MomentumEncoder: momentum must be in [0, 1), got %r"
                       % (momentum,))
    self.momentum = float(momentum)
    self.key_factory = key_factory
    self.lazy = None if lazy is None else bool(lazy)
    # A closure is not tracked by Keras/tf.Module, so `online` stays out of
    # this layer's weights and checkpoint.
    self._online = lambda: online
    self.key_tower = (key_factory() if key_factory is not None
                      else keras.layers.deserialize(keras.layers.serialize(online)))
    self.key_tower.trainable = False
    _share_item_features(online, self.key_tower)
    self._towers_called = False
    self._table_positions = ()   # positions in `weight_pairs()` of the tables
    self._pending = None         # rows `catch_up` found, for the next `update`
    self.initialized = self.add_weight(
        name="initialized", shape=(), dtype=tf.bool, initializer="zeros",
        trainable=False)
    self.step = self.add_weight(
        name="step", shape=(), dtype=tf.int64, initializer="zeros",
        trainable=False)
    self.last_steps = []         # per table, int64 [rows]: step of the row's value

  @property
  def online(self):
    return self._online()

  def weight_pairs(self):
    """[(online weight, key weight)] that the key copy averages or copies.

    In creation order per sublayer; the weights both towers share (the
    catalog arrays) are left out.
    """
    online_weights = _ordered_weights(self.online)
    key_weights = _ordered_weights(self.key_tower)
    shared = {id(w) for w in online_weights} & {id(w) for w in key_weights}
    online_weights = [w for w in online_weights if id(w) not in shared]
    key_weights = [w for w in key_weights if id(w) not in shared]
    if len(online_weights) != len(key_weights):
      raise ValueError(
          "MomentumEncoder: the key copy has %d weights but the online tower %d"
          % (len(key_weights), len(online_weights)))
    for o, k in zip(online_weights, key_weights):
      if o.shape != k.shape or o.dtype != k.dtype:
        raise ValueError("MomentumEncoder: weight %s %s/%s does not match %s %s/%s"
                         % (k.name, k.shape, k.dtype.name, o.name, o.shape,
                            o.dtype.name))
    return list(zip(online_weights, key_weights))

  def _tables(self):
    """[(online, key, last_steps)] of the embedding tables."""
    pairs = self.weight_pairs()
    return [pairs[p] + (last,) for p, last in zip(self._table_positions,
                                                   self.last_steps)]

  def _find_tables(self, inputs):
    """Calls both towers once (creating their weights) and finds the tables."""
    with tf.GradientTape() as tape:
      outputs = self.online(inputs)
      total = tf.add_n([tf.reduce_sum(x) for x in tf.nest.flatten(outputs)
                        if x.dtype.is_floating])
    self.key_tower(inputs)
    pairs = self.weight_pairs()
    candidates = [p for p, (o, _) in enumerate(pairs)
                  if o.trainable and o.dtype.is_floating]
    gradients = tape.gradient(total, [pairs[p][0] for p in candidates])
    self._table_positions = tuple(
        p for p, g in zip(candidates, gradients)
        if isinstance(g, tf.IndexedSlices))
    for i, p in enumerate(self._table_positions):
      self.last_steps.append(self.add_weight(
          name="last_step_%d" % i, shape=(pairs[p][0].shape[0],), dtype=tf.int64,
          initializer="zeros", trainable=False))

  def _copy(self):
    ops = [k.assign(o) for o, k in self.weight_pairs()]
    step = self.step.read_value()
    ops += [last.assign(tf.fill(tf.shape(last), step)) for last in self.last_steps]
    with tf.control_dependencies(ops):
      return self.initialized.assign(True)

  def _maybe_initialize(self):
    def copy():
      with tf.control_dependencies([self._copy()]):
        return tf.constant(True)
    return tf.cond(self.initialized, lambda: tf.constant(False), copy)

  def _caught_up(self, table, rows):
    """Key rows brought up to `step` by d applications of Eq. 2.

    k <- m^d k + (1 - m^d) o with d = step - last_step (per row), exact while
    the online rows have not changed since `last_step`. `rows` int64 [U]
    (unique), or None for every row. Returns the new values ([U, ...] or the
    whole table).
    """
    online, key, last = table
    step = self.step.read_value()
    if rows is None:
      behind = step - last.read_value()                             # [N]
    else:
      behind = step - tf.gather(last, rows)                         # [U]
    decay = tf.pow(tf.constant(self.momentum, key.dtype),
                   tf.cast(behind, key.dtype))                      # [U]
    decay = tf.reshape(decay, [-1] + [1] * (key.shape.rank - 1))    # [U, 1]
    if rows is None:
      return decay * key + (1.0 - decay) * online                   # [N, D]
    return (decay * tf.gather(key, rows)
            + (1.0 - decay) * tf.gather(online, rows))              # [U, D]

  def _write(self, table, rows, values, step):
    """Writes key `values` of `rows` (None: all) and their `last_step`."""
    _, key, last = table
    if rows is None:
      return [key.assign(values), last.assign(tf.fill(tf.shape(last), step))]
    return [key.scatter_update(tf.IndexedSlices(values, rows)),
            last.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(rows), step),
                                                 rows))]

  def _advance(self, table, rows):
    """Catches up key rows (None: all) to the present step, in place."""
    return self._write(table, rows, self._caught_up(table, rows),
                       self.step.read_value())

  def _catch_up_reads(self, inputs):
    """Catches up the table rows that `key_tower(inputs)` reads."""
    tables = self._tables()
    if not tables:
      return []
    keys = [key for _, key, _ in tables]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(keys)
      outputs = self.key_tower(inputs, training=False)
      total = tf.add_n([tf.reduce_sum(x) for x in tf.nest.flatten(outputs)
                        if x.dtype.is_floating])
    ops = []
    for table, gradient in zip(tables, tape.gradient(total, keys)):
      if isinstance(gradient, tf.IndexedSlices):
        rows, _ = tf.unique(tf.cast(gradient.indices, tf.int64))     # [U]
        ops += self._advance(table, rows)
      elif gradient is not None:
        ops += self._advance(table, None)      # a dense read: every row
    return ops

  def call(self, inputs, training=False):
    if not self._towers_called:
      # `built` is unreliable after deserialisation: one forward pass of each
      # tower (at the first call or trace) creates whatever weights it lacks.
      self._find_tables(inputs)
      self._towers_called = True
    with tf.control_dependencies([self._maybe_initialize()]):
      ready = self._catch_up_reads(inputs)
    with tf.control_dependencies(ready):
      keys = self.key_tower(inputs, training=False)
    return tf.nest.map_structure(tf.stop_gradient, keys)

  def catch_up(self, grads_and_vars, optimizer):
    """Before `optimizer.apply_gradients(grads_and_vars)`: catch up its rows.

    Brings every key table row that the optimizer is about to change up to
    date with the online row's present (old) value, and keeps the rows and
    their values for `update`, which writes them (nothing reads the key copy
    in between). With a dense optimizer (see `lazy`) nothing is kept and
    `update` averages every row; rows left behind by earlier lazy steps are
    caught up here first. Returns the ops.
    """
    self._pending = None
    tables = self._tables()
    lazy = (updates_only_rows_in_gradient(optimizer) if self.lazy is None
            else self.lazy)
    if not lazy:
      def catch_up_all():
        ops = []
        for table in tables:
          ops += self._advance(table, None)
        with tf.control_dependencies(ops):
          return tf.constant(True)
      behind = [tf.reduce_any(last < self.step) for _, _, last in tables]
      if not behind:
        return []
      return [tf.cond(tf.reduce_any(tf.stack(behind)), catch_up_all,
                      lambda: tf.constant(False))]
    gradients = {v.ref(): g for g, v in grads_and_vars}
    pending = []
    for table in tables:
      gradient = gradients.get(table[0].ref())
      if isinstance(gradient, tf.IndexedSlices):
        rows, _ = tf.unique(tf.cast(gradient.indices, tf.int64))     # [U]
      elif gradient is not None:
        rows = tf.range(table[0].shape[0], dtype=tf.int64)           # every row
      else:
        pending.append(None)                                         # untouched
        continue
      # The caught-up rows are kept, not written: `update` writes them once,
      # one step further (nothing reads the key copy in between).
      pending.append((rows, self._caught_up(table, rows)))
    self._pending = pending
    return [values for entry in pending if entry is not None
            for values in entry]

  def update(self):
    """One step of Eq. 2: theta_k <- m theta_k + (1 - m) theta_q.

    Dense trainable float weights are averaged and other non-shared weights
    copied. Embedding tables: after a lazy `catch_up`, only the rows it found
    (written once, from the values it caught up); otherwise every row, which
    must then be up to date (a dense `catch_up` sees to it). Returns the ops.
    """
    pending, self._pending = self._pending, None
    tables = self._tables()
    table_refs = {table[0].ref(): i for i, table in enumerate(tables)}
    step = self.step.read_value() + 1
    m = self.momentum
    ops = []
    for o, k in self.weight_pairs():
      if o.ref() in table_refs:
        table = tables[table_refs[o.ref()]]
        if pending is None:    # dense: every row (all current, see catch_up)
          ops += self._write(table, None, m * k + (1.0 - m) * o, step)
        elif pending[table_refs[o.ref()]] is not None:
          rows, caught = pending[table_refs[o.ref()]]
          values = m * caught + (1.0 - m) * tf.gather(o, rows)       # [U, D]
          ops += self._write(table, rows, values, step)
      elif o.dtype.is_floating and o.trainable:
        ops.append(k.assign(m * k + (1.0 - m) * o))
      else:
        ops.append(k.assign(o))
    with tf.control_dependencies(ops):
      ops.append(self.step.assign_add(1))
    return ops

  def get_config(self):
    config = super().get_config()
    config.update(self.nested_layer_config(),
                  momentum=self.momentum, lazy=self.lazy)
    return config
