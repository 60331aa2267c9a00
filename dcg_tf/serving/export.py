"""Export of trained towers as SavedModels that take raw ids.

Only the towers are exported (tfrs style, `layers/factorized_top_k.py`): the
serving modules hold `user_tower`, `item_tower` and the id vocabularies as
in-graph `tf.lookup.StaticHashTable`s, never the training model, so losses,
queues and momentum encoders cannot enter the SavedModel (docs/design.md).

`export_dir` receives:
  user_tower/          SavedModel; signatures
                         serving_default(history string [B, L])
                         serve_with_context(history string [B, L],
                                            history_timestamp int64 [B, L],
                                            query_timestamp int64 [B],
                                            user_id string [B])
                       -> {"embedding": [B, D]} or, multi-interest,
                          {"embeddings": [B, K, D], "mask": bool [B, K]}.
                       Inputs of another rank or shape fail with an
                       InvalidArgumentError naming the input and its shape.
                       '' pads; unknown ids map to 0 and are dropped; the known
                       ids are left-aligned and the most recent `max_len` kept
                       (the training batch layout). serving_default fills
                       timestamps with 0 and the user with 0 (unknown).
  item_tower/          SavedModel; serving_default(item_id string [B])
                       -> {"embedding": [B, D], "known": bool [B]}; unknown ids
                       give a zero row and known = False.
  item_embeddings.npy  float32 [N, D]; row r = item index r + 1. With a
                       popularity knob (`popularity_beta`), [N, D + 1]: the
                       item vectors (L2-normalised for cosine towers) and
                       log p(i) as the last column
                       (`dcg_tf.evaluation.popularity_correction`).
  item_ids.txt         raw item id of row r on line r.
  export.json          dims, metric, multi-interest flag, max_len, dataset
                       fingerprint and the export fingerprint (sha256 of
                       item_embeddings.npy and the dims) that Faiss indexes
                       built from this export carry; with the knob,
                       "popularity" = {beta (the Retriever's default), the
                       definition of p, smoothing, tower_metric} and the
                       metric of the widened vectors, "ip".

The user tower SavedModel is the same with or without the knob: it returns
the tower's D-dimensional vectors and `dcg_tf.Retriever` appends beta.
"""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from dcg_tf.errors import InputError
from dcg_tf.evaluation import popularity_correction
from dcg_tf.towers import multi_interest
from dcg_tf.towers.encode_catalog import encode_catalog

EXPORT_FILE = "export.json"
EMBEDDINGS_FILE = "item_embeddings.npy"
ITEM_IDS_FILE = "item_ids.txt"
USER_TOWER_DIR = "user_tower"
ITEM_TOWER_DIR = "item_tower"
_FORMAT_VERSION = 1


def vocabulary_table(vocab, name):
  """An in-graph `StaticHashTable`: line v-1 of `vocab` -> v, anything else -> 0.

  Args:
    vocab: list of raw ids (str), index = position + 1 (docs/design.md).
    name: the vocabulary's name, for error messages.
  """
  vocab = [str(v) for v in vocab]
  if "" in vocab:
    raise ValueError("vocabulary %r contains the empty string at line %d; '' is "
                     "reserved for padding" % (name, vocab.index("") + 1))
  if len(set(vocab)) != len(vocab):
    seen = set()
    duplicate = next(v for v in vocab if v in seen or seen.add(v))
    raise ValueError("vocabulary %r lists %r twice (lines %d and later)"
                     % (name, duplicate, vocab.index(duplicate) + 1))
  keys = tf.constant(vocab if vocab else [""], tf.string)
  values = tf.range(1, len(vocab) + 1, dtype=tf.int64) if vocab else tf.constant(
      [0], tf.int64)
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(keys, values), default_value=0,
      name="%s_vocabulary" % name)


def left_align_recent(ids, max_len, *aligned):
  """Drops ids == 0, left-aligns the rest and keeps the last `max_len` of each row.

  Args:
    ids: int64 [B, L] item indices, 0 = padding or unknown.
    max_len: output length.
    *aligned: tensors [B, L] moved along with `ids` (e.g. timestamps).

  Returns:
    ids int64 [B, max_len] and each of `aligned` [B, max_len], 0-padded at the end.
  """
  known = ids > 0                                              # [B, L]
  rank = tf.cumsum(tf.cast(known, tf.int32), axis=1)           # [B, L] 1-based
  count = tf.reduce_sum(tf.cast(known, tf.int32), axis=1, keepdims=True)  # [B, 1]
  keep = known & (rank > count - max_len)                      # [B, L]
  return [tf.ragged.boolean_mask(t, keep).to_tensor(
      default_value=tf.zeros([], t.dtype), shape=[None, max_len])  # [B, max_len]
          for t in (ids,) + aligned]


def _untracked_call(tower):
  """`tower(inputs, training=False)` as a plain function.

  The serving modules track the tower's variables, not the Keras object: the
  SavedModel then holds the traced signatures and those variables only (no
  Keras layer metadata, nothing else reachable from the tower), and saving
  skips Keras' per-layer tracing.
  """
  return lambda inputs: tower(inputs, training=False)


def checked_shape(tensor, rank, name, like=None):
  """`tensor` behind a run-time check of its rank (and shape), with a readable error.

  A serving signature declares shapes (`[None, None]`), but a caller of the
  SavedModel (plain TensorFlow, TensorFlow Serving) can feed another rank and
  would get an opaque error from deep inside the graph. The check must run
  when the graph runs: `tf.rank` and `tf.debugging.assert_rank` read the
  declared rank at trace time (always the expected one) and TensorFlow's graph
  optimiser folds `Rank` and `Size` of the shape into constants. So the
  shape vector is padded with -1s: `padded[rank - 1] >= 0` and
  `padded[rank] == -1` hold exactly when the tensor has rank `rank`.

  Args:
    tensor: an input of a serving signature.
    rank: the rank it must have (>= 1).
    name: its name in the signature, for the message.
    like: optional tensor whose first `rank` dimensions it must equal (e.g.
      the timestamps of a history [B, L], the query times of a batch [B]).

  Returns:
    `tensor`, computed after the check (an `InvalidArgumentError` whose
    message names the input, the expected and the received shape otherwise).
  """
  shape = tf.shape(tensor)
  padded = tf.concat([shape, -tf.ones([rank + 1], shape.dtype)], 0)  # [rank(t) + rank + 1]
  ok = tf.logical_and(padded[rank - 1] >= 0, padded[rank] < 0)
  layout = {1: "[batch]", 2: "[batch, length]"}.get(rank, "rank %d" % rank)
  checks = [tf.debugging.Assert(
      ok, ["%s must be %d-D %s; got an input of shape" % (name, rank, layout), shape])]
  if like is not None:
    with tf.control_dependencies(checks):
      expected = tf.shape(like)[:rank]
      checks.append(tf.debugging.Assert(
          tf.reduce_all(tf.equal(shape, expected)),
          ["%s must have shape" % name, expected,
           "(the %s of history); got" % ("shape" if rank == 2 else "batch size"),
           shape]))
  with tf.control_dependencies(checks):
    return tf.identity(tensor)


class UserTowerServing(tf.Module):
  """Raw ids -> user embedding(s); the module saved as `user_tower/`.

  Args:
    tower: the user tower (batch dict -> [B, D], or `([B, K, D], [B, K])`
      for a tower with `is_multi_interest`, `dcg_tf.towers.multi_interest`).
    item_vocab: raw item ids, index = position + 1.
    user_vocab: raw user ids, index = position + 1.
    max_len: history length the tower was trained with.
  """

  def __init__(self, tower, item_vocab, user_vocab, max_len, name=None):
    super().__init__(name=name)
    call = _untracked_call(tower)
    self._tower = lambda batch: multi_interest.split_output(tower, call(batch))
    self.item_table = vocabulary_table(item_vocab, "item")
    self.user_table = vocabulary_table(user_vocab, "user")
    self.max_len = int(max_len)
    # One eager call builds the tower (Keras creates variables on first call)
    # and tells the output structure.
    probe = self.embed(tf.constant([item_vocab[:1]], tf.string),
                       tf.zeros([1, len(item_vocab[:1])], tf.int64),
                       tf.zeros([1], tf.int64), tf.constant([""]))
    self.multi_interest = "embeddings" in probe
    self.num_interests = (int(probe["embeddings"].shape[1])
                          if self.multi_interest else None)
    self.embedding_dim = int(probe["embeddings" if self.multi_interest
                                   else "embedding"].shape[-1])
    self.tower_variables = list(tower.variables)

  def embed(self, history, history_timestamp, query_timestamp, user_id):
    history_ids = self.item_table.lookup(history)              # [B, L]
    ids, timestamps = left_align_recent(history_ids, self.max_len,
                                        history_timestamp)     # [B, max_len] x 2
    batch = {
        "history": ids,
        "history_mask": ids > 0,
        "history_timestamp": timestamps,
        "target_timestamp": query_timestamp,
        "user": self.user_table.lookup(user_id),               # [B]
    }
    vectors, mask = self._tower(batch)                         # [B, (K,) D]
    if mask is not None:                                       # multi-interest
      return {"embeddings": tf.cast(vectors, tf.float32),      # [B, K, D]
              "mask": tf.cast(mask, tf.bool)}                  # [B, K]
    return {"embedding": tf.cast(vectors, tf.float32)}         # [B, D]

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name="history")])
  def serve(self, history):
    history = checked_shape(history, 2, "history")
    shape = tf.shape(history)
    return self.embed(history, tf.zeros(shape, tf.int64),
                      tf.zeros(shape[:1], tf.int64), tf.fill(shape[:1], ""))

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name="history"),
      tf.TensorSpec([None, None], tf.int64, name="history_timestamp"),
      tf.TensorSpec([None], tf.int64, name="query_timestamp"),
      tf.TensorSpec([None], tf.string, name="user_id")])
  def serve_with_context(self, history, history_timestamp, query_timestamp,
                         user_id):
    history = checked_shape(history, 2, "history")
    history_timestamp = checked_shape(history_timestamp, 2, "history_timestamp",
                                      like=history)
    query_timestamp = checked_shape(query_timestamp, 1, "query_timestamp",
                                    like=history)
    user_id = checked_shape(user_id, 1, "user_id", like=history)
    return self.embed(history, history_timestamp, query_timestamp, user_id)


class ItemTowerServing(tf.Module):
  """Raw item ids -> item embeddings; the module saved as `item_tower/`.

  Args:
    tower: the item tower (int64 [B] -> [B, D]); it gathers item features
      from the catalog arrays it holds.
    item_vocab: raw item ids, index = position + 1.
  """

  def __init__(self, tower, item_vocab, name=None):
    super().__init__(name=name)
    self._tower = _untracked_call(tower)
    self.item_table = vocabulary_table(item_vocab, "item")
    self.embedding_dim = int(self._tower(tf.constant([0], tf.int64)).shape[-1])
    self.tower_variables = list(tower.variables)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="item_id")])
  def serve(self, item_id):
    ids = self.item_table.lookup(checked_shape(item_id, 1, "item_id"))  # [B]
    known = ids > 0                                            # [B]
    embedding = tf.cast(self._tower(ids), tf.float32)         # [B, D]
    embedding = tf.where(known[:, None], embedding, tf.zeros_like(embedding))
    return {"embedding": embedding, "known": known}


def export_fingerprint(embeddings_path, dims, extra=None):
  """sha256 of the embeddings file bytes, the dims and `extra` (JSON)."""
  digest = hashlib.sha256()
  with open(embeddings_path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  digest.update(json.dumps({"dims": dims, "extra": extra}, sort_keys=True).encode())
  return digest.hexdigest()


def item_vector_dim(config):
  """Width of `item_embeddings.npy` and of the index: D, or D + 1 with the knob."""
  return int(config["embedding_dim"]) + (1 if config.get("popularity") else 0)


def export_towers(user_tower, item_tower, data, export_dir, max_len,
                  fingerprint_extra=None, overwrite=False, popularity_beta=0.0):
  """Writes the serving SavedModels, item embeddings and `export.json`.

  Args:
    user_tower: trained user tower (e.g. `model.user_tower`).
    item_tower: trained item tower (e.g. `model.item_tower`).
    data: the `ProcessedDataset` the model was trained on; uses
      `vocab("item")`, `vocab("user")` and `fingerprint`.
    export_dir: output directory; must be empty or absent unless `overwrite`.
    max_len: history length the user tower was trained with.
    fingerprint_extra: JSON-serialisable provenance (e.g. the checkpoint path)
      recorded in `export.json` and mixed into the export fingerprint.
    overwrite: allow writing into a non-empty `export_dir`.
    popularity_beta: 0 (default): today's export. Otherwise the item vectors
      carry log p(i) (p from `data.item_count`,
      `dcg_tf.evaluation.popularity_correction`) as an extra column, and
      `export.json` records beta as the Retriever's default.

  Returns:
    The content of `export.json` (dict).
  """
  if os.path.isdir(export_dir) and os.listdir(export_dir) and not overwrite:
    raise FileExistsError("%s is not empty; choose a new --export_dir" % export_dir)
  if max_len < 1:
    raise ValueError("max_len must be >= 1, got %r" % max_len)
  item_vocab = list(data.vocab("item"))
  user_vocab = list(data.vocab("user"))
  if not item_vocab:
    raise ValueError("the dataset's item vocabulary is empty")
  for line, item_id in enumerate(item_vocab, 1):
    if "\n" in item_id or "\r" in item_id:
      raise ValueError("item vocabulary line %d: id %r contains a newline"
                       % (line, item_id))
  os.makedirs(export_dir, exist_ok=True)

  user_module = UserTowerServing(user_tower, item_vocab, user_vocab, max_len)
  item_module = ItemTowerServing(item_tower, item_vocab)
  embeddings = encode_catalog(item_tower, len(item_vocab))  # [N, D]
  dim = item_module.embedding_dim
  if user_module.embedding_dim != dim:
    raise ValueError("the user tower returns dimension %d, the item tower %d"
                     % (user_module.embedding_dim, dim))
  for tower in (user_tower, item_tower):
    declared = getattr(tower, "embedding_dim", None)
    if declared is not None and int(declared) != dim:
      raise ValueError("%s.embedding_dim = %d but its output has dimension %d"
                       % (type(tower).__name__, declared, dim))
  normalized = bool(getattr(item_tower, "normalized", False)) and bool(
      getattr(user_tower, "normalized", False))

  metric = "cosine" if normalized else "ip"
  dims = {"num_items": len(item_vocab), "embedding_dim": dim}
  popularity = None
  if popularity_beta:
    if normalized:
      # Cosine: normalise v_i first; the log p column must not be normalised.
      norms = np.linalg.norm(embeddings, axis=1, keepdims=True)    # [N, 1]
      embeddings = embeddings / np.maximum(norms, 1e-12)           # [N, D]
    embeddings = popularity_correction.with_popularity_column(
        embeddings, popularity_correction.log_popularity(data.item_count))  # [N, D+1]
    popularity = dict(popularity_correction.describe(popularity_beta),
                      tower_metric=metric, column=dim)
    dims["popularity_column"] = popularity["definition"]
    metric = "ip"   # the widened vectors are searched by plain inner product

  tf.saved_model.save(
      user_module, os.path.join(export_dir, USER_TOWER_DIR),
      signatures={"serving_default": user_module.serve,
                  "serve_with_context": user_module.serve_with_context})
  tf.saved_model.save(item_module, os.path.join(export_dir, ITEM_TOWER_DIR),
                      signatures={"serving_default": item_module.serve})
  embeddings_path = os.path.join(export_dir, EMBEDDINGS_FILE)
  np.save(embeddings_path, embeddings, allow_pickle=False)
  ids_text = "".join(item_id + "\n" for item_id in item_vocab)
  with open(os.path.join(export_dir, ITEM_IDS_FILE), "w") as f:
    f.write(ids_text)

  content = {
      "format_version": _FORMAT_VERSION,
      "num_items": len(item_vocab),
      "embedding_dim": dim,
      "metric": metric,
      "normalized": normalized,
      "multi_interest": user_module.multi_interest,
      "num_interests": user_module.num_interests,
      "max_len": int(max_len),
      "dataset_fingerprint": getattr(data, "fingerprint", None),
      "item_ids_sha256": hashlib.sha256(ids_text.encode()).hexdigest(),
      "fingerprint_extra": fingerprint_extra,
      "export_fingerprint": export_fingerprint(embeddings_path, dims,
                                               fingerprint_extra),
      "user_tower_class": type(user_tower).__name__,
      "item_tower_class": type(item_tower).__name__,
  }
  if popularity is not None:
    content["popularity"] = popularity
  with open(os.path.join(export_dir, EXPORT_FILE), "w") as f:
    json.dump(content, f, indent=2, sort_keys=True)
  return content


def read_export(export_dir):
  """Reads and checks `export_dir/export.json`; returns the dict."""
  path = os.path.join(export_dir, EXPORT_FILE)
  try:
    with open(path) as f:
      content = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError("%s: not an export directory (no %s); run "
                            "python -m experiments.export first"
                            % (export_dir, EXPORT_FILE)) from None
  except json.JSONDecodeError as e:
    raise InputError("%s: not valid JSON (%s)" % (path, e)) from None
  for field in ("num_items", "embedding_dim", "metric", "multi_interest",
                "max_len", "export_fingerprint"):
    if field not in content:
      raise InputError("%s: missing field %r" % (path, field))
  return content
