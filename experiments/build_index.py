r"""Builds a Faiss index over an export's item embeddings.

  python -m experiments.build_index --export_dir=DIR --index=flat|ivf|hnsw|ivfpq \
      [--output_dir=DIR] [--shards=N] [--chunk_rows=R] \
      [--nlist=N --nprobe=N --pq_m=M --pq_nbits=B] \
      [--hnsw_m=M --ef_construction=N --ef_search=N]

The metric (inner product or cosine) comes from the export. The index and its
sidecar (`index.faiss`, `index.json`: id map, dimension, metric, parameters
and the export's fingerprint) go to `--output_dir`, default
`EXPORT_DIR/index_<kind>` (`index_<kind>_<N>shards` with `--shards=N`). Unset
parameters take the defaults of `dcg_tf.serving.index.default_params`.

`item_embeddings.npy` is read `--chunk_rows` rows at a time
(`dcg_tf.serving.embedding_reader.NpyReader`, no memory map) and, with
`--shards=N`, cut into N contiguous row ranges written as N Faiss files listed
in `index.json`; each shard is written as soon as it is filled
(`dcg_tf.serving.index.build_export_index`, docs/scale.md).
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import os
import time

from absl import app
from absl import flags

from dcg_tf.serving import index as index_lib

FLAGS = flags.FLAGS

flags.DEFINE_string("export_dir", None, "An export written by experiments/export.py.")
flags.DEFINE_enum("index", "flat", index_lib.KINDS, "Index kind.")
flags.DEFINE_string("output_dir", None,
                    "Default: EXPORT_DIR/index_<kind>[_<N>shards].")
flags.DEFINE_integer("shards", 1, "Contiguous row ranges, one Faiss file each.",
                     lower_bound=1)
flags.DEFINE_integer("chunk_rows", index_lib.DEFAULT_CHUNK_ROWS,
                     "Embedding rows read at a time.", lower_bound=1)
flags.DEFINE_integer("nlist", None, "IVF cells (default 4 sqrt(N)).")
flags.DEFINE_integer("nprobe", None, "IVF cells visited per query.")
flags.DEFINE_integer("pq_m", None, "PQ sub-quantisers (must divide the dimension).")
flags.DEFINE_integer("pq_nbits", None, "Bits per PQ code.")
flags.DEFINE_integer("hnsw_m", None, "HNSW links per node.")
flags.DEFINE_integer("ef_construction", None, "HNSW build-time beam width.")
flags.DEFINE_integer("ef_search", None, "HNSW search-time beam width.")

# Flag name -> build_index parameter name.
_PARAM_FLAGS = {"nlist": "nlist", "nprobe": "nprobe", "pq_m": "pq_m",
                "pq_nbits": "pq_nbits", "hnsw_m": "m",
                "ef_construction": "ef_construction", "ef_search": "ef_search"}


def main(argv):
  del argv
  if not FLAGS.export_dir:
    raise app.UsageError("--export_dir is required")
  params = {name: getattr(FLAGS, flag) for flag, name in _PARAM_FLAGS.items()
            if getattr(FLAGS, flag) is not None}
  start = time.time()
  try:
    manifest, output_dir = index_lib.build_export_index(
        FLAGS.export_dir, FLAGS.index, FLAGS.output_dir, FLAGS.shards,
        FLAGS.chunk_rows, **params)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  print("Built %s index (%s, %d items x %d, %d shard(s), %s) in %.1f s; saved to %s"
        % (manifest["kind"], manifest["metric"], manifest["num_items"],
           manifest["dimension"], manifest.get("num_shards", 1),
           manifest["params"], time.time() - start, output_dir))


if __name__ == "__main__":
  cli.run(main)
