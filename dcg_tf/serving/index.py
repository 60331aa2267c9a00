"""Faiss indexes over exported item embeddings, saved with a JSON sidecar.

`build_index` wraps the four Faiss index kinds a candidate generator needs:
exact (`flat`), inverted file (`ivf`, Jegou et al., TPAMI'11), graph
(`hnsw`, Malkov & Yashunin, TPAMI'18) and inverted file with product
quantisation (`ivfpq`). Faiss label `r` is row `r` of `item_embeddings.npy`,
i.e. item index `r + 1` (docs/design.md), i.e. line `r` of `item_ids.txt`.

`save_index` writes `index.faiss` and `index.json` (id map, dimension, metric,
kind, parameters and the export's fingerprint); `load_index` refuses an index
whose fingerprint, dimension or size does not match the export it is loaded
with, so an index built from one training run never serves another's towers.

Example:
  >>> embeddings = np.load("export/item_embeddings.npy")   # [N, D]
  >>> item_index = build_index(embeddings, kind="ivf", metric="ip")
  >>> save_index(item_index, "export/index_ivf", index_sidecar("export"))
  >>> item_index = load_index("export/index_ivf", "export")
  >>> scores, labels = item_index.search(queries, k=50)     # labels = rows
"""

import dataclasses
import json
import math
import os
from typing import Any, Dict

import faiss
import numpy as np

from dcg_tf.errors import InputError
from dcg_tf.serving.export import item_vector_dim, read_export

KINDS = ("flat", "ivf", "hnsw", "ivfpq")
METRICS = ("ip", "cosine")
INDEX_FILE = "index.faiss"
SIDECAR_FILE = "index.json"
_FORMAT_VERSION = 1
# Faiss k-means warns below 39 training points per centroid and subsamples to
# 256; 64 per centroid trains well and keeps 1M-item builds to minutes.
_TRAIN_POINTS_PER_CENTROID = 64


@dataclasses.dataclass
class ItemIndex:
  """A Faiss index over item embeddings and how it was built.

  Attributes:
    index: the `faiss.Index`; label `r` = embedding row `r` = item index `r + 1`.
    kind: one of `KINDS`.
    metric: "ip" (inner product) or "cosine" (rows were L2-normalised before
      adding; `search` normalises the queries too).
    params: every build and search parameter, defaults filled in.
    num_items: number of rows N.
    dim: embedding dimension D.
  """
  index: Any
  kind: str
  metric: str
  params: Dict[str, Any]
  num_items: int
  dim: int

  def search(self, queries, k):
    """Returns (scores [Q, k] float32, labels [Q, k] int64; -1 = no result)."""
    queries = _as_float32_matrix(queries, "queries", self.dim)
    if self.metric == "cosine":
      queries = l2_normalize(queries)
    return self.index.search(queries, int(k))

  def set_search_params(self, nprobe=None, ef_search=None):
    """Changes the search-time knobs (IVF `nprobe`, HNSW `efSearch`)."""
    if nprobe is not None:
      if self.kind not in ("ivf", "ivfpq"):
        raise ValueError("nprobe applies to ivf/ivfpq, not to %r" % self.kind)
      self.index.nprobe = int(nprobe)
      self.params["nprobe"] = int(nprobe)
    if ef_search is not None:
      if self.kind != "hnsw":
        raise ValueError("ef_search applies to hnsw, not to %r" % self.kind)
      self.index.hnsw.efSearch = int(ef_search)
      self.params["ef_search"] = int(ef_search)

  def __repr__(self):
    return "ItemIndex(kind=%r, metric=%r, num_items=%d, dim=%d, params=%r)" % (
        self.kind, self.metric, self.num_items, self.dim, self.params)


def default_params(kind, num_items, dim, nlist=None):
  """Sensible defaults for `kind` at `num_items` rows of dimension `dim`.

  IVF: `nlist = 4 * sqrt(N)` cells (the Faiss wiki's 4-16 x sqrt(N) rule),
  `nprobe = max(16, nlist / 64)` (at most nlist); benchmarks/retrieval_benchmark.py
  measures the recall / speed trade-off (docs/performance.md). HNSW: `M = 32` links per node,
  `efConstruction = 80`, `efSearch = 128`. PQ: `m` sub-quantisers of 4
  dimensions each (the largest divisor of D not above D / 4), 8 bits each
  (fewer when N is too small to train 256 centroids). `nlist` given, nprobe
  follows it.
  """
  if kind not in KINDS:
    raise ValueError("unknown index kind %r; choose one of %s" % (kind, KINDS))
  if kind == "flat":
    return {}
  if kind == "hnsw":
    return {"m": 32, "ef_construction": 80, "ef_search": 128}
  if nlist is None:
    nlist = max(1, min(num_items, int(round(4 * math.sqrt(num_items)))))
  params = {"nlist": nlist, "nprobe": min(nlist, max(16, nlist // 64)),
            "seed": 1234}
  if kind == "ivfpq":
    params["pq_m"] = max(d for d in range(1, max(1, dim // 4) + 1) if dim % d == 0)
    params["pq_nbits"] = int(min(8, max(1, math.floor(math.log2(max(2, num_items))))))
  return params


def build_index(embeddings, kind="flat", metric="ip", **params):
  """Builds a Faiss index over `embeddings` [N, D].

  Args:
    embeddings: float array [N, D]; row r = item index r + 1.
    kind: "flat" (exact), "ivf", "hnsw" or "ivfpq".
    metric: "ip" or "cosine" (take it from the export: `export.json["metric"]`).
    **params: overrides of `default_params(kind, N, D)`: `nlist`, `nprobe`,
      `seed` (ivf, ivfpq); `pq_m`, `pq_nbits` (ivfpq); `m`, `ef_construction`,
      `ef_search` (hnsw).

  Returns:
    An `ItemIndex`.
  """
  if metric not in METRICS:
    raise ValueError("unknown metric %r; choose one of %s" % (metric, METRICS))
  embeddings = _as_float32_matrix(embeddings, "embeddings")
  num_items, dim = embeddings.shape
  if num_items == 0:
    raise ValueError("cannot index an empty embedding matrix")
  full = default_params(kind, num_items, dim,
                        nlist=params.get("nlist") if kind in ("ivf", "ivfpq") else None)
  unknown = sorted(set(params) - set(full))
  if unknown:
    raise ValueError("index kind %r has no parameter(s) %s; it has: %s"
                     % (kind, ", ".join(unknown), ", ".join(sorted(full)) or "none"))
  full.update({key: int(value) for key, value in params.items()})
  if metric == "cosine":
    embeddings = l2_normalize(embeddings)
  index = _new_index(kind, dim, full)
  if not index.is_trained:
    if full["nlist"] > num_items:
      raise ValueError("nlist=%d exceeds the number of items %d"
                       % (full["nlist"], num_items))
    index.train(_training_sample(embeddings, full["nlist"], full["seed"]))
  index.add(embeddings)
  item_index = ItemIndex(index, kind, metric, full, num_items, dim)
  item_index.set_search_params(nprobe=full.get("nprobe"),
                               ef_search=full.get("ef_search"))
  return item_index


def index_sidecar(export_dir):
  """The sidecar entries that tie an index to the export in `export_dir`."""
  export = read_export(export_dir)
  return {
      "export_fingerprint": export["export_fingerprint"],
      "dataset_fingerprint": export.get("dataset_fingerprint"),
      "id_map": {
          "label_to_row": "label r = row r of item_embeddings.npy",
          "label_to_item_index": "item index = label + 1",
          "label_to_item_id": "line r (0-based) of item_ids.txt",
          "item_ids_sha256": export.get("item_ids_sha256"),
          "num_items": export["num_items"],
      },
  }


def save_index(item_index, path, sidecar):
  """Writes `path/index.faiss` and `path/index.json`.

  Args:
    item_index: an `ItemIndex` from `build_index`.
    path: output directory (created).
    sidecar: dict with at least "export_fingerprint" (use `index_sidecar`),
      merged into the JSON next to the index's own description.
  """
  if "export_fingerprint" not in sidecar:
    raise ValueError("the index sidecar needs the export's fingerprint "
                     "(`index_sidecar(export_dir)` builds it)")
  os.makedirs(path, exist_ok=True)
  faiss.write_index(item_index.index, os.path.join(path, INDEX_FILE))
  content = dict(sidecar)
  content.update(format_version=_FORMAT_VERSION, kind=item_index.kind,
                 metric=item_index.metric, dimension=item_index.dim,
                 num_items=item_index.num_items, params=item_index.params,
                 faiss_version=faiss.__version__)
  with open(os.path.join(path, SIDECAR_FILE), "w") as f:
    json.dump(content, f, indent=2, sort_keys=True)


def load_index(path, export_dir):
  """Loads an index saved by `save_index`, checked against `export_dir`.

  Raises:
    InputError: the sidecar's export fingerprint, dimension or item count does
      not match `export_dir/export.json` (the index was built from other towers).
  """
  sidecar_path = os.path.join(path, SIDECAR_FILE)
  try:
    with open(sidecar_path) as f:
      sidecar = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError("%s: no index sidecar; build the index with "
                            "experiments/build_index.py" % sidecar_path) from None
  except json.JSONDecodeError as e:
    raise InputError("%s: not valid JSON (%s)" % (sidecar_path, e)) from None
  for field in ("export_fingerprint", "kind", "metric", "dimension", "num_items",
                "params"):
    if field not in sidecar:
      raise InputError("%s: missing field %r" % (sidecar_path, field))
  export = read_export(export_dir)
  # The index holds item_embeddings.npy's rows: D wide, D + 1 with the
  # popularity column (dcg_tf.evaluation.popularity_correction).
  expected = {"export_fingerprint": export["export_fingerprint"],
              "dimension": item_vector_dim(export),
              "num_items": export["num_items"], "metric": export["metric"]}
  for index_key, value in expected.items():
    if sidecar[index_key] != value:
      raise InputError(
          "%s: %s %r does not match %r of the export %s; the index was built "
          "from another export. Rebuild it: python -m experiments.build_index "
          "--export_dir=%s" % (sidecar_path, index_key, sidecar[index_key],
                               value, os.path.join(export_dir, "export.json"),
                               export_dir))
  index = faiss.read_index(os.path.join(path, INDEX_FILE))
  if index.d != sidecar["dimension"] or index.ntotal != sidecar["num_items"]:
    raise InputError("%s: index.faiss holds %d x %d but the sidecar says %d x %d"
                     % (path, index.ntotal, index.d, sidecar["num_items"],
                        sidecar["dimension"]))
  item_index = ItemIndex(index, sidecar["kind"], sidecar["metric"],
                         dict(sidecar["params"]), int(sidecar["num_items"]),
                         int(sidecar["dimension"]))
  item_index.set_search_params(nprobe=item_index.params.get("nprobe"),
                               ef_search=item_index.params.get("ef_search"))
  return item_index


def _new_index(kind, dim, params):
  metric = faiss.METRIC_INNER_PRODUCT
  if kind == "flat":
    return faiss.IndexFlatIP(dim)
  if kind == "hnsw":
    index = faiss.IndexHNSWFlat(dim, params["m"], metric)
    index.hnsw.efConstruction = params["ef_construction"]
    return index
  quantizer = faiss.IndexFlatIP(dim)
  if kind == "ivf":
    index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], metric)
  else:
    if dim % params["pq_m"]:
      raise ValueError("pq_m=%d must divide the dimension %d" % (params["pq_m"], dim))
    index = faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["pq_m"],
                             params["pq_nbits"], metric)
  index.cp.seed = params["seed"]  # k-means initialisation
  return index


def _training_sample(embeddings, nlist, seed):
  # At least 10,000 points so that PQ codebooks (256 centroids each) train too.
  size = min(len(embeddings), max(_TRAIN_POINTS_PER_CENTROID * nlist, 10_000))
  if size == len(embeddings):
    return embeddings
  rng = np.random.default_rng(seed)
  rows = np.sort(rng.choice(len(embeddings), size=size, replace=False))
  return embeddings[rows]


def _as_float32_matrix(array, name, dim=None):
  array = np.ascontiguousarray(array, dtype=np.float32)
  if array.ndim != 2:
    raise ValueError("%s must be a matrix [N, D], got shape %s" % (name, array.shape))
  if dim is not None and array.shape[1] != dim:
    raise ValueError("%s have dimension %d, the index %d" % (name, array.shape[1], dim))
  if not np.isfinite(array).all():
    raise ValueError("%s contain NaN or infinite values" % name)
  return array


def l2_normalize(array):
  """Rows of `array` [N, D] scaled to unit L2 norm (zero rows stay zero)."""
  norms = np.linalg.norm(array, axis=1, keepdims=True)
  return np.ascontiguousarray(array / np.maximum(norms, 1e-12), dtype=np.float32)
