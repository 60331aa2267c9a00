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

Scale (docs/scale.md): the embeddings are read through a reader
(`dcg_tf.serving.embedding_reader`) `chunk_rows` rows at a time, for the
training sample and for adding, so the catalog never has to fit in memory.
With `shards=S > 1` the rows are cut into S contiguous ranges, each its own
Faiss index (IVF kinds: copies of one index trained once on a sample of all
rows, so every shard shares the coarse quantiser and the PQ codebooks), saved
as S files `shard_0000s-of-0000S.faiss` listed with their row ranges in
`index.json` (the manifest). Loaded, the shards are one `faiss.IndexShards`
whose search merges the per-shard top-k (exact: the global top-k of each
query is among the union of the shards' top-k), with labels offset by each
shard's first row, so labels stay rows of `item_embeddings.npy` and
`dcg_tf.evaluation.topk.TopKSearcher` (multi-interest merge included) runs
over a sharded index unchanged. `build_and_save_index` writes each shard as
soon as it is filled: the builder holds one shard at a time.

Example:
  >>> embeddings = np.load("export/item_embeddings.npy")   # [N, D]
  >>> item_index = build_index(embeddings, kind="ivf", metric="ip")
  >>> save_index(item_index, "export/index_ivf", index_sidecar("export"))
  >>> item_index = load_index("export/index_ivf", "export")
  >>> scores, labels = item_index.search(queries, k=50)     # labels = rows
  >>> build_and_save_index("export/item_embeddings.npy", "export/index_ivfpq_4",
  ...                      index_sidecar("export"), kind="ivfpq", shards=4)
"""

import dataclasses
import json
import math
import os
from typing import Any, Dict, List, Optional

import faiss
import numpy as np

from dcg_tf.errors import InputError
from dcg_tf.serving import embedding_reader
from dcg_tf.serving.export import EMBEDDINGS_FILE, EXPORT_FILE
from dcg_tf.serving.export import item_vector_dim, read_export

KINDS = ("flat", "ivf", "hnsw", "ivfpq")
METRICS = ("ip", "cosine")
INDEX_FILE = "index.faiss"
SIDECAR_FILE = "index.json"
SHARD_FILE = "shard_{:05d}-of-{:05d}.faiss"
# Rows read and added at a time: 1M x 64 float32 = 256 MB.
DEFAULT_CHUNK_ROWS = 1_000_000
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
    shard_bounds: None for one index; for a sharded index the [start, stop)
      rows of each shard, in order (`index` is then a `faiss.IndexShards`).
  """
  index: Any
  kind: str
  metric: str
  params: Dict[str, Any]
  num_items: int
  dim: int
  shard_bounds: Optional[List[List[int]]] = None

  @property
  def num_shards(self):
    return 1 if self.shard_bounds is None else len(self.shard_bounds)

  def shard_indexes(self):
    """The Faiss index of each shard (the one index when not sharded)."""
    if self.shard_bounds is None:
      return [self.index]
    return [faiss.downcast_index(self.index.at(i)) for i in range(self.index.count())]

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
      for part in self.shard_indexes():
        part.nprobe = int(nprobe)
      self.params["nprobe"] = int(nprobe)
    if ef_search is not None:
      if self.kind != "hnsw":
        raise ValueError("ef_search applies to hnsw, not to %r" % self.kind)
      for part in self.shard_indexes():
        part.hnsw.efSearch = int(ef_search)
      self.params["ef_search"] = int(ef_search)

  def __repr__(self):
    shards = ", shards=%d" % self.num_shards if self.shard_bounds else ""
    return "ItemIndex(kind=%r, metric=%r, num_items=%d, dim=%d%s, params=%r)" % (
        self.kind, self.metric, self.num_items, self.dim, shards, self.params)


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


def build_index(embeddings, kind="flat", metric="ip", shards=1,
                chunk_rows=DEFAULT_CHUNK_ROWS, **params):
  """Builds a Faiss index over `embeddings` [N, D], in memory.

  Args:
    embeddings: float array [N, D], a `.npy` path or a reader
      (`dcg_tf.serving.embedding_reader`); row r = item index r + 1. Read
      `chunk_rows` rows at a time.
    kind: "flat" (exact), "ivf", "hnsw" or "ivfpq".
    metric: "ip" or "cosine" (take it from the export: `export.json["metric"]`).
    shards: number of contiguous row ranges, each its own Faiss index; 1 (the
      default) builds one plain index.
    chunk_rows: rows read (and normalised, checked, added) at a time.
    **params: overrides of `default_params(kind, N, D)`: `nlist`, `nprobe`,
      `seed` (ivf, ivfpq); `pq_m`, `pq_nbits` (ivfpq); `m`, `ef_construction`,
      `ef_search` (hnsw).

  Returns:
    An `ItemIndex`.
  """
  plan = _plan(embeddings, kind, metric, shards, chunk_rows, params)
  built = list(_build_shards(plan))
  if len(built) == 1:
    index, bounds = built[0][2], None
  else:
    index = _union_of_shards(plan.dim, [part for _, _, part in built])
    bounds = [[start, stop] for start, stop, _ in built]
  item_index = ItemIndex(index, kind, metric, plan.params, plan.num_items,
                         plan.dim, bounds)
  item_index.set_search_params(nprobe=plan.params.get("nprobe"),
                               ef_search=plan.params.get("ef_search"))
  return item_index


def build_and_save_index(embeddings, path, sidecar, kind="flat", metric="ip",
                         shards=1, chunk_rows=DEFAULT_CHUNK_ROWS, **params):
  """Builds shard after shard, writing each as soon as it is filled.

  The same index as `save_index(build_index(...), path, sidecar)`, but the
  process holds one shard, one chunk and the training sample at a time, not
  the whole index. `index.json` is written last, so an interrupted build
  leaves no loadable index.

  Args: as `build_index`, plus `path` and `sidecar` as `save_index`.

  Returns:
    The content of `index.json` (dict).
  """
  _check_sidecar(sidecar)
  plan = _plan(embeddings, kind, metric, shards, chunk_rows, params)
  os.makedirs(path, exist_ok=True)
  entries = []
  for number, (start, stop, part) in enumerate(_build_shards(plan)):
    entries.append(_write_part(part, path, number, len(plan.bounds), start, stop))
    del part   # one shard in memory at a time
  return _write_sidecar(path, sidecar, kind, metric, plan.dim, plan.num_items,
                        plan.params, entries)


@dataclasses.dataclass
class _Plan:
  reader: Any
  kind: str
  metric: str
  params: Dict[str, Any]
  num_items: int
  dim: int
  bounds: List[List[int]]
  chunk_rows: int


def _plan(embeddings, kind, metric, shards, chunk_rows, params):
  """Checks the arguments; fills in the parameters and the shards' row ranges."""
  if metric not in METRICS:
    raise ValueError("unknown metric %r; choose one of %s" % (metric, METRICS))
  reader = embedding_reader.as_reader(embeddings)
  num_items, dim = reader.shape
  if num_items == 0:
    raise ValueError("cannot index an empty embedding matrix")
  full = default_params(kind, num_items, dim,
                        nlist=params.get("nlist") if kind in ("ivf", "ivfpq") else None)
  unknown = sorted(set(params) - set(full))
  if unknown:
    raise ValueError("index kind %r has no parameter(s) %s; it has: %s"
                     % (kind, ", ".join(unknown), ", ".join(sorted(full)) or "none"))
  full.update({key: int(value) for key, value in params.items()})
  shards, chunk_rows = int(shards), int(chunk_rows)
  if not 1 <= shards <= num_items:
    raise ValueError("shards=%d: choose 1 to the number of items (%d)"
                     % (shards, num_items))
  if chunk_rows < 1:
    raise ValueError("chunk_rows must be >= 1, got %d" % chunk_rows)
  if "nlist" in full and full["nlist"] > num_items:
    raise ValueError("nlist=%d exceeds the number of items %d"
                     % (full["nlist"], num_items))
  # Contiguous ranges whose sizes differ by at most one row.
  bounds = [[s * num_items // shards, (s + 1) * num_items // shards]
            for s in range(shards)]
  return _Plan(reader, kind, metric, full, num_items, dim, bounds, chunk_rows)


def _build_shards(plan):
  """Trains once (IVF kinds), then yields (start, stop, Faiss index) per shard."""
  template = _new_index(plan.kind, plan.dim, plan.params)
  trained = not template.is_trained
  if trained:
    template.train(_training_sample(plan))
  for number, (start, stop) in enumerate(plan.bounds):
    if number == 0 and len(plan.bounds) == 1:
      part = template
    elif trained:
      part = faiss.clone_index(template)   # the shared quantiser and codebooks
    else:
      part = _new_index(plan.kind, plan.dim, plan.params)
    for a, b in embedding_reader.chunk_bounds(start, stop, plan.chunk_rows):
      part.add(_read_rows(plan, a, b))
    yield start, stop, part


def _read_rows(plan, start, stop):
  """Rows start..stop-1 as checked float32 [rows, D], L2-normalised for cosine."""
  block = np.ascontiguousarray(plan.reader.read(start, stop), dtype=np.float32)
  name = getattr(plan.reader, "path", "embeddings")
  if block.shape != (stop - start, plan.dim):
    raise ValueError("%s: reading rows [%d, %d) gave shape %s, expected %s"
                     % (name, start, stop, block.shape, (stop - start, plan.dim)))
  if not np.isfinite(block).all():
    row = start + int(np.argwhere(~np.isfinite(block))[0][0])
    raise ValueError("%s: row %d (item %d) holds NaN or infinite values"
                     % (name, row, row + 1))
  if plan.metric == "cosine":
    block = l2_normalize(block)
  return block                                                     # [rows, D]


def _union_of_shards(dim, parts):
  """One searchable index over `parts`; labels offset by the earlier shards' sizes.

  Sequential (threaded=False): each shard's search uses Faiss's OpenMP threads
  over the queries. The metric follows the first shard (inner product).
  """
  union = faiss.IndexShards(dim, False, True)
  for part in parts:
    union.add_shard(part)   # the Python wrapper keeps `part` alive
  return union


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
  """Writes `path/index.faiss` (or one file per shard) and `path/index.json`.

  Args:
    item_index: an `ItemIndex` from `build_index`.
    path: output directory (created).
    sidecar: dict with at least "export_fingerprint" (use `index_sidecar`),
      merged into the JSON next to the index's own description; for a sharded
      index the JSON also lists each shard's file and row range.
  """
  _check_sidecar(sidecar)
  os.makedirs(path, exist_ok=True)
  bounds = item_index.shard_bounds or [[0, item_index.num_items]]
  entries = [_write_part(part, path, number, len(bounds), start, stop)
             for number, (part, (start, stop))
             in enumerate(zip(item_index.shard_indexes(), bounds))]
  _write_sidecar(path, sidecar, item_index.kind, item_index.metric,
                 item_index.dim, item_index.num_items, item_index.params, entries)


def _check_sidecar(sidecar):
  if "export_fingerprint" not in sidecar:
    raise ValueError("the index sidecar needs the export's fingerprint "
                     "(`index_sidecar(export_dir)` builds it)")


def _write_part(part, path, number, num_shards, start, stop):
  """Writes one shard (`index.faiss` when there is one); returns its entry."""
  if num_shards == 1:
    faiss.write_index(part, os.path.join(path, INDEX_FILE))
    return None
  name = SHARD_FILE.format(number, num_shards)
  faiss.write_index(part, os.path.join(path, name))
  return {"file": name, "start": int(start), "stop": int(stop)}


def _write_sidecar(path, sidecar, kind, metric, dim, num_items, params, entries):
  content = dict(sidecar)
  content.update(format_version=_FORMAT_VERSION, kind=kind, metric=metric,
                 dimension=dim, num_items=num_items, params=params,
                 faiss_version=faiss.__version__)
  if entries != [None]:
    content.update(num_shards=len(entries), shards=entries)
  with open(os.path.join(path, SIDECAR_FILE), "w") as f:
    json.dump(content, f, indent=2, sort_keys=True)
  return content


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
  if "shards" in sidecar:
    index = _read_shards(path, sidecar)
    bounds = [[entry["start"], entry["stop"]] for entry in sidecar["shards"]]
  else:
    index = _read_index_file(os.path.join(path, INDEX_FILE), sidecar_path)
    bounds = None
  if index.d != sidecar["dimension"] or index.ntotal != sidecar["num_items"]:
    raise InputError("%s: the index holds %d x %d but the sidecar says %d x %d"
                     % (path, index.ntotal, index.d, sidecar["num_items"],
                        sidecar["dimension"]))
  item_index = ItemIndex(index, sidecar["kind"], sidecar["metric"],
                         dict(sidecar["params"]), int(sidecar["num_items"]),
                         int(sidecar["dimension"]), bounds)
  item_index.set_search_params(nprobe=item_index.params.get("nprobe"),
                               ef_search=item_index.params.get("ef_search"))
  return item_index


def _read_index_file(file, sidecar_path):
  if not os.path.isfile(file):
    raise FileNotFoundError("%s: missing, but %s lists it; rebuild the index with "
                            "python -m experiments.build_index" % (file, sidecar_path))
  return faiss.read_index(file)


def _read_shards(path, sidecar):
  """The shards listed in the manifest as one `faiss.IndexShards`, checked."""
  sidecar_path = os.path.join(path, SIDECAR_FILE)
  entries = sidecar["shards"]
  if not isinstance(entries, list) or not entries:
    raise InputError("%s: field 'shards' must be a non-empty list" % sidecar_path)
  parts, next_row = [], 0
  for number, entry in enumerate(entries):
    missing = [f for f in ("file", "start", "stop") if f not in entry]
    if missing:
      raise InputError("%s: shard %d has no field(s) %s"
                       % (sidecar_path, number, ", ".join(missing)))
    if entry["start"] != next_row or entry["stop"] < entry["start"]:
      raise InputError("%s: shard %d covers rows [%d, %d); the shards must cover "
                       "the rows in order, this one from row %d"
                       % (sidecar_path, number, entry["start"], entry["stop"],
                          next_row))
    file = os.path.join(path, entry["file"])
    part = _read_index_file(file, sidecar_path)
    if part.d != sidecar["dimension"]:
      raise InputError("%s: dimension %d, but %s says %d; the shard comes from "
                       "another build, rebuild the index"
                       % (file, part.d, sidecar_path, sidecar["dimension"]))
    if part.ntotal != entry["stop"] - entry["start"]:
      raise InputError("%s: holds %d vectors, but %s gives it rows [%d, %d); the "
                       "shard comes from another build, rebuild the index"
                       % (file, part.ntotal, sidecar_path, entry["start"],
                          entry["stop"]))
    parts.append(part)
    next_row = entry["stop"]
  if next_row != sidecar["num_items"]:
    raise InputError("%s: the shards cover %d rows, num_items is %d"
                     % (sidecar_path, next_row, sidecar["num_items"]))
  return _union_of_shards(sidecar["dimension"], parts)


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


def _training_sample(plan):
  """A random sample of the rows, read chunk by chunk (k-means and PQ training).

  The rows are those today's in-memory sample would take (`seed`, sorted);
  chunks holding none of them are not read.
  """
  num_items = plan.num_items
  # At least 10,000 points so that PQ codebooks (256 centroids each) train too.
  size = min(num_items, max(_TRAIN_POINTS_PER_CENTROID * plan.params["nlist"],
                            10_000))
  rows = None
  if size < num_items:
    rng = np.random.default_rng(plan.params["seed"])
    rows = np.sort(rng.choice(num_items, size=size, replace=False))  # [size]
  parts = []
  for start, stop in embedding_reader.chunk_bounds(0, num_items, plan.chunk_rows):
    if rows is None:
      parts.append(_read_rows(plan, start, stop))
      continue
    low, high = np.searchsorted(rows, [start, stop])
    if high > low:
      parts.append(_read_rows(plan, start, stop)[rows[low:high] - start])
  return parts[0] if len(parts) == 1 else np.concatenate(parts)    # [size, D]


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


def build_export_index(export_dir, kind, output_dir=None, shards=1,
                       chunk_rows=DEFAULT_CHUNK_ROWS, **params):
  """Builds and saves the index of an export (`experiments.build_index`).

  Reads `item_embeddings.npy` `chunk_rows` rows at a time
  (`embedding_reader.NpyReader`, no memory map), checks its shape against
  `export.json`, and writes `build_and_save_index`'s files to `output_dir`
  (default `EXPORT_DIR/index_<kind>`, `index_<kind>_<N>shards` when sharded).

  Returns:
    (the `index.json` content, output_dir).

  Raises:
    ValueError: the embeddings do not match the export's description.
  """
  config = read_export(export_dir)
  reader = embedding_reader.NpyReader(os.path.join(export_dir, EMBEDDINGS_FILE))
  expected = (config["num_items"], item_vector_dim(config))
  if reader.shape != expected:
    raise ValueError("%s has shape %s, but %s says %s; export the model again"
                     % (reader.path, reader.shape,
                        os.path.join(export_dir, EXPORT_FILE), expected))
  if output_dir is None:
    output_dir = os.path.join(export_dir, "index_%s%s" % (
        kind, "_%dshards" % shards if shards > 1 else ""))
  manifest = build_and_save_index(
      reader, output_dir, index_sidecar(export_dir), kind=kind,
      metric=config["metric"], shards=shards, chunk_rows=chunk_rows, **params)
  return manifest, output_dir
