r"""Builds a Faiss index over an export's item embeddings.

  python -m experiments.build_index --export_dir=DIR --index=flat|ivf|hnsw|ivfpq \
      [--output_dir=DIR] [--nlist=N --nprobe=N --pq_m=M --pq_nbits=B] \
      [--hnsw_m=M --ef_construction=N --ef_search=N]

The metric (inner product or cosine) comes from the export. The index and its
sidecar (`index.faiss`, `index.json`: id map, dimension, metric, parameters
and the export's fingerprint) go to `--output_dir`, default
`EXPORT_DIR/index_<kind>`. Unset parameters take the defaults of
`dcg_tf.serving.index.default_params`.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import os
import time

from absl import app
from absl import flags

import numpy as np
from dcg_tf.serving import export as export_lib
from dcg_tf.serving import index as index_lib

FLAGS = flags.FLAGS

flags.DEFINE_string("export_dir", None, "An export written by experiments/export.py.")
flags.DEFINE_enum("index", "flat", index_lib.KINDS, "Index kind.")
flags.DEFINE_string("output_dir", None, "Default: EXPORT_DIR/index_<kind>.")
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


def run(export_dir, kind, output_dir=None, **params):
  """Builds and saves the index; returns (ItemIndex, output_dir)."""
  config = export_lib.read_export(export_dir)
  embeddings = np.load(os.path.join(export_dir, export_lib.EMBEDDINGS_FILE),
                       allow_pickle=False)
  item_index = index_lib.build_index(embeddings, kind=kind, metric=config["metric"],
                                     **params)
  output_dir = output_dir or os.path.join(export_dir, "index_%s" % kind)
  index_lib.save_index(item_index, output_dir, index_lib.index_sidecar(export_dir))
  return item_index, output_dir


def main(argv):
  del argv
  if not FLAGS.export_dir:
    raise app.UsageError("--export_dir is required")
  params = {name: getattr(FLAGS, flag) for flag, name in _PARAM_FLAGS.items()
            if getattr(FLAGS, flag) is not None}
  start = time.time()
  try:
    item_index, output_dir = run(FLAGS.export_dir, FLAGS.index, FLAGS.output_dir,
                                 **params)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  print("Built %r in %.1f s; saved to %s" % (item_index, time.time() - start,
                                             output_dir))


if __name__ == "__main__":
  cli.run(main)
