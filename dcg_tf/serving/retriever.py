"""`dcg_tf.Retriever`: raw item history in, ranked raw item ids out.

Loads an export written by `dcg_tf.serving.export.export_towers` (the user
tower SavedModel, `item_embeddings.npy`, `item_ids.txt`) and, optionally, a
Faiss index built by `experiments/build_index.py`. The top-K step is
`dcg_tf.evaluation.topk.TopKSearcher`, the same code the evaluator ranks with.

Popularity knob (`dcg_tf.evaluation.popularity_correction`): an export
written with `--beta` carries log p(i) as the last column of its item vectors;
the Retriever appends `beta` to every user vector, so it ranks by
`s(u, i) + beta * log p(i)` with a plain inner-product search (the export's
beta by default, any other at construction).
"""

import os
import warnings

import numpy as np
import tensorflow as tf

from dcg_tf.evaluation import popularity_correction
from dcg_tf.evaluation import topk
from dcg_tf.evaluation.topk import TopKSearcher
from dcg_tf.serving import export as export_lib
from dcg_tf.serving import index as index_lib


class Retriever:
  """Retrieves the top-k items for raw item-id histories.

  Args:
    user_model: the loaded `user_tower/` SavedModel (`tf.saved_model.load`);
      None for a Retriever that only searches query vectors
      (`search_embeddings`), e.g. in benchmarks.
    item_embeddings: float32 [N, D]; row r = item index r + 1.
    item_ids: the N raw item ids in row order (`item_ids.txt`).
    config: the export's `export.json` content.
    item_index: optional `dcg_tf.serving.index.ItemIndex` (approximate search,
      one index or shards merged by `faiss.IndexShards`); default exact
      inner-product search.
    beta: weight of log p(i) in the score; None: the export's
      (`config["popularity"]["beta"]`, 0 without it). A non-zero beta needs
      an export written with the popularity column (`experiments.export
      --beta`).

  Example (in a notebook, after `make demo`):
    >>> import dcg_tf
    >>> retriever = dcg_tf.Retriever.from_export("demo_out/export",
    ...                                          "demo_out/export/index_hnsw")
    >>> retriever          # items, dim, metric, index kind and parameters
    >>> history = open("demo_out/export/item_ids.txt").read().split()[:3]
    >>> retriever.retrieve(history, k=5)      # [(item_id, score)] x 5, best first
    >>> retriever.retrieve_batch([history, history[:1]], k=5)
  """

  def __init__(self, user_model, item_embeddings, item_ids, config,
               item_index=None, beta=None):
    item_embeddings = np.asarray(item_embeddings, dtype=np.float32)
    if len(item_ids) != item_embeddings.shape[0]:
      raise ValueError("%d item ids for %d embedding rows"
                       % (len(item_ids), item_embeddings.shape[0]))
    self.user_model = user_model
    self.item_ids = list(item_ids)
    self.config = dict(config)
    self.item_index = item_index
    self.metric = self.config["metric"]
    self.multi_interest = bool(self.config["multi_interest"])
    self.item_row = {item_id: row for row, item_id in enumerate(self.item_ids)}
    self.popularity = self.config.get("popularity")
    if beta is None:
      beta = self.popularity["beta"] if self.popularity else 0.0
    if beta and not self.popularity:
      raise ValueError("beta=%r needs item vectors with the log p column; export "
                       "the model again with python -m experiments.export "
                       "--beta=..." % (beta,))
    self.beta = float(beta)
    if self.metric == "cosine":
      item_embeddings = index_lib.l2_normalize(item_embeddings)
    self.searcher = TopKSearcher(
        item_embeddings, index=None if item_index is None else item_index.index,
        item_offset=1)
    self._serve = (None if user_model is None
                   else user_model.signatures["serving_default"])

  @classmethod
  def from_export(cls, export_dir, index_dir=None, beta=None):
    """Loads `export_dir` and, if given, the Faiss index in `index_dir`.

    The index must have been built from this export (its sidecar's fingerprint
    is checked, `dcg_tf.serving.index.load_index`); a sharded index (`index.json`
    listing shard files) loads the same way. `beta`: as in `Retriever`.
    """
    config = export_lib.read_export(export_dir)
    embeddings = np.load(os.path.join(export_dir, export_lib.EMBEDDINGS_FILE),
                         allow_pickle=False)
    expected = (config["num_items"], export_lib.item_vector_dim(config))
    if embeddings.shape != expected:
      raise ValueError("%s has shape %s, export.json says %s" % (
          os.path.join(export_dir, export_lib.EMBEDDINGS_FILE), embeddings.shape,
          expected))
    ids_path = os.path.join(export_dir, export_lib.ITEM_IDS_FILE)
    with open(ids_path) as f:
      item_ids = f.read().splitlines()
    if len(item_ids) != config["num_items"]:
      raise ValueError("%s has %d lines, export.json says num_items = %d"
                       % (ids_path, len(item_ids), config["num_items"]))
    item_index = (None if index_dir is None
                  else index_lib.load_index(index_dir, export_dir))
    user_model = tf.saved_model.load(
        os.path.join(export_dir, export_lib.USER_TOWER_DIR))
    return cls(user_model, embeddings, item_ids, config, item_index, beta)

  def __repr__(self):
    search = ("exact flat" if self.item_index is None else "%s%s %s" % (
        self.item_index.kind,
        " x%d shards" % self.item_index.num_shards
        if self.item_index.shard_bounds else "", self.item_index.params))
    knob = ", beta=%g" % self.beta if self.popularity else ""
    return ("Retriever(items=%d, dim=%d, metric=%r, search=%r, multi_interest=%s, "
            "max_len=%d%s)" % (len(self.item_ids), self.searcher.dimension,
                               self.metric, search, self.multi_interest,
                               self.config["max_len"], knob))

  def user_embeddings(self, histories):
    """Runs the user tower on raw histories; returns numpy outputs.

    Returns:
      [Q, D] vectors, or for multi-interest towers `(vectors [Q, K, D],
      mask [Q, K])`.
    """
    if self._serve is None:
      raise ValueError("this Retriever has no user tower (user_model=None); "
                       "search with query vectors: search_embeddings(...)")
    histories = [[str(item) for item in history] for history in histories]
    width = max([1] + [len(h) for h in histories])
    padded = [h + [""] * (width - len(h)) for h in histories]   # [Q, L] '' = pad
    outputs = self._serve(history=tf.constant(padded, tf.string, shape=[len(padded), width]))
    vectors, mask = topk.as_queries({key: value.numpy()
                                     for key, value in outputs.items()})
    return vectors if mask is None else (vectors, mask)

  def search_embeddings(self, queries, k, exclude=None, query_mask=None):
    """Top-k item indices for query embeddings: `TopKSearcher.search`.

    Multi-interest queries [Q, K, D] with `query_mask` [Q, K] search each
    active vector and merge by maximum score (the evaluation's path). With
    the popularity column, every vector gets `beta` appended ([..., D + 1])
    after the cosine normalisation of its D tower coordinates.
    """
    queries = np.asarray(queries, dtype=np.float32)
    cosine = (self.popularity["tower_metric"] if self.popularity
              else self.metric) == "cosine"
    if cosine:
      shape = queries.shape
      queries = index_lib.l2_normalize(queries.reshape(-1, shape[-1])).reshape(shape)
    if self.popularity:
      queries = popularity_correction.with_beta_column(queries, self.beta)
    return self.searcher.search(queries, k, exclude=exclude, query_mask=query_mask)

  def retrieve_batch(self, histories, k=20, exclude_history=True):
    """Top-k `(item_id, score)` lists for each history (raw item ids, oldest first).

    Warns (`UserWarning`) when a history has no id of the catalog (empty, or
    only unknown ids): the user tower then sees an empty history and the
    answer is the same for every such user, not personalised. A `k` above the
    catalog size is clipped to it, with a warning.
    """
    histories = [list(h) for h in histories]
    if not histories:
      return []
    unknown = [q for q, h in enumerate(histories)
               if not any(item in self.item_row for item in h)]
    if unknown:
      warnings.warn(
          "%d of %d histories hold no item id of this export's catalog (the "
          "first is #%d, of %d ids): the answer is not personalised, the user "
          "tower sees an empty history" % (len(unknown), len(histories),
                                           unknown[0], len(histories[unknown[0]])),
          stacklevel=2)
    if k > len(self.item_ids):
      warnings.warn("k=%d is above the catalog size; returning at most %d items"
                    % (k, len(self.item_ids)), stacklevel=2)
      k = len(self.item_ids)
    exclude = None
    if exclude_history:
      exclude = [np.array([self.item_row[i] + 1 for i in h if i in self.item_row],
                          dtype=np.int64) for h in histories]
    vectors, mask = topk.as_queries(self.user_embeddings(histories))
    scores, items = self.search_embeddings(vectors, k, exclude, mask)
    return [[(self.item_ids[item - 1], float(score))
             for score, item in zip(row_scores, row_items) if item > 0]
            for row_scores, row_items in zip(scores, items)]

  def retrieve(self, history, k=20, exclude_history=True):
    """Top-k `(item_id, score)` for one history of raw item ids, best first.

    Args:
      history: raw item ids, oldest first; unknown ids are ignored (with a
        warning when none is known: the answer is then not personalised).
      k: number of items (clipped to the catalog size, with a warning).
      exclude_history: leave the history's items out of the results.
    """
    if isinstance(history, str):
      raise TypeError("history must be a list of item ids, not a string; "
                      "did you mean [%r]?" % history)
    return self.retrieve_batch([history], k, exclude_history)[0]
