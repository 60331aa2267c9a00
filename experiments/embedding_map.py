r"""t-SNE maps of item embeddings coloured by an item field, and NMI per model.

  python -m experiments.embedding_map \
      --models=baseline=runs/ssl_baseline,cfm=runs/ssl_cfm --data_dir=DATA \
      --field=genre --num_groups=10 --per_group=100 \
      --output=runs/embedding_map.json --png=docs/results/ssl_cfm_tsne.png

SSL-CFM (Yao et al., CIKM'21) Figure 5 (item embeddings coloured by genre,
with and without SSL) and PCL-AISL (Li et al., CIKM'22) Figure 3 (10
categories x 100 items, with and without a module, plus NMI between k-means
clusters and the categories). Steps, the same for every model:

1. Items: the `--num_groups` most frequent values of the item feature
   `--field` (catalog.npz; a multi-valued field groups an item by its FIRST
   value, value 0 = unknown is never a group), `--per_group` items of each
   drawn with `--seed` (`dcg_tf.evaluation.embedding_map.sample_groups`).
   Every model must have been trained on the same dataset (fingerprint), so
   all panels show the same items.
2. Embeddings: the model's item tower on those items (`encode_catalog`).
3. NMI: Faiss k-means (`dcg_tf.training_state.prototypes.kmeans`, k =
   `--num_groups`, `--seed`, spherical when `--spherical`) against the field
   values, `normalized_mutual_information` (arithmetic-mean normalisation).
4. Map: exact t-SNE (`dcg_tf.evaluation.embedding_map.tsne`, van der Maaten
   & Hinton 2008) with `--perplexity` and `--iterations`, `--seed`.

Writes `--output` (JSON: the items, their groups, per model the NMI, the
cluster of each item, the t-SNE coordinates and final KL) and `--png` (one
panel per model, points coloured by field value).
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import json
import os
import sys

from absl import app
from absl import flags

import numpy as np

from dcg_tf.errors import InputError
from dcg_tf.evaluation import embedding_map
from dcg_tf.towers.encode_catalog import encode_catalog
from dcg_tf.training import checkpoint
from dcg_tf.training_state.prototypes import kmeans

FLAGS = flags.FLAGS

flags.DEFINE_list("models", [], "NAME=MODEL_DIR pairs (experiments/train.py runs).")
flags.DEFINE_string("data_dir", None,
                    "Processed dataset; default: the one recorded at training.")
flags.DEFINE_string("field", "genre", "Item feature whose values colour the map.")
flags.DEFINE_integer("num_groups", 10, "The most frequent values shown (= k of k-means).")
flags.DEFINE_integer("per_group", 100, "Items sampled per value.")
flags.DEFINE_integer("seed", 0, "Seed of the item sample, k-means and t-SNE.")
flags.DEFINE_float("perplexity", 30.0, "t-SNE perplexity (at most items - 1).")
flags.DEFINE_integer("iterations", 1000, "t-SNE gradient steps.")
flags.DEFINE_boolean("spherical", True,
                     "Spherical k-means (centroids renormalised; cosine towers).")
flags.DEFINE_enum("checkpoint", "latest", list(checkpoint.CHECKPOINTS),
                  "Which weights of every model.")
flags.DEFINE_string("output", None, "Output JSON file.")
flags.DEFINE_string("png", None, "Output PNG (one t-SNE panel per model).")

NMI_DEFINITION = ("NMI = I(clusters; values) / ((H(clusters) + H(values)) / 2), "
                  "arithmetic-mean normalisation")


def group_names(data, field, values):
  """Display names of field values: the vocabulary entry, else the index."""
  try:
    vocab = data.vocab(field)
  except InputError:
    return [str(int(v)) for v in values]
  return [vocab[int(v) - 1] if 0 < v <= len(vocab) else str(int(v))
          for v in values]


def run(models, data_dir=None, field="genre", num_groups=10, per_group=100,
        seed=0, perplexity=30.0, iterations=1000, spherical=True,
        which="latest", png=None):
  """The JSON-ready report of every model (see the module doc)."""
  if not models:
    raise InputError("--models is empty: give NAME=MODEL_DIR pairs")
  report = {"field": field, "num_groups": num_groups, "per_group": per_group,
            "seed": seed, "perplexity": perplexity, "iterations": iterations,
            "spherical_kmeans": spherical, "checkpoint": which,
            "nmi_definition": NMI_DEFINITION,
            "multi_valued": "an item is grouped by its first value",
            "models": {}}
  fingerprint = items = groups = None
  for name, model_dir in models.items():
    model, data = checkpoint.load_trained_model(model_dir, data_dir, which)
    if fingerprint is None:
      if field not in data.item_features:
        raise InputError("%s has no item feature %r (it has %s): give --field"
                         % (data.directory, field, sorted(data.item_features)))
      fingerprint = data.fingerprint
      items, groups = embedding_map.sample_groups(
          data.item_features[field], num_groups, per_group, seed)
      values = list(dict.fromkeys(groups.tolist()))
      report.update(
          data_dir=data.directory, dataset_fingerprint=fingerprint,
          items=items.tolist(), groups=groups.tolist(),
          group_names=dict(zip([str(v) for v in values],
                               group_names(data, field, values))))
    elif data.fingerprint != fingerprint:
      raise InputError("%s was trained on another dataset (fingerprint %s, the "
                       "first model's is %s): every model must share the data"
                       % (model_dir, data.fingerprint[:12], fingerprint[:12]))
    vectors = encode_catalog(model.item_tower, data.num_items, item_ids=items)
    _, clusters = kmeans(vectors, num_groups, seed, spherical=spherical)
    coordinates, kl = embedding_map.tsne(vectors, perplexity, iterations,
                                         seed=seed, return_kl=True)
    report["models"][name] = {
        "model_dir": model_dir,
        "experiment": checkpoint.read_run_info(model_dir).get("experiment"),
        "nmi": embedding_map.normalized_mutual_information(clusters, groups),
        "clusters": clusters.tolist(),
        "tsne_kl": kl,
        "tsne": np.round(coordinates, 4).tolist()}
  if png:
    plot(report, png)
  return report


def plot(report, path):
  """One scatter panel per model, coloured by field value, NMI in the title."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  names = list(report["models"])
  groups = np.asarray(report["groups"])
  values = list(dict.fromkeys(report["groups"]))
  colours = pyplot.get_cmap("tab10" if len(values) <= 10 else "tab20")
  figure, axes = pyplot.subplots(1, len(names), figsize=(5 * len(names), 5),
                                 squeeze=False)
  for axis, name in zip(axes[0], names):
    result = report["models"][name]
    xy = np.asarray(result["tsne"])
    for g, value in enumerate(values):
      rows = groups == value
      axis.scatter(xy[rows, 0], xy[rows, 1], s=6, color=colours(g % colours.N),
                   label=report["group_names"][str(value)])
    axis.set_title("%s: NMI %.3f" % (name, result["nmi"]))
    axis.set_xticks([])
    axis.set_yticks([])
  axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                     markerscale=2, title=report["field"])
  figure.suptitle("t-SNE of item embeddings, %d %s values x %d items"
                  % (report["num_groups"], report["field"], report["per_group"]))
  cli.save_png(figure, path)


def main(argv):
  del argv
  if not FLAGS.models or not FLAGS.output:
    raise app.UsageError("--models and --output are required")
  report = run(cli.parse_pairs(FLAGS.models, "models"), FLAGS.data_dir,
               FLAGS.field, FLAGS.num_groups, FLAGS.per_group, FLAGS.seed,
               FLAGS.perplexity, FLAGS.iterations, FLAGS.spherical,
               FLAGS.checkpoint, FLAGS.png)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(FLAGS.output, "w") as f:
    json.dump(report, f, indent=1, sort_keys=True)
  print("| model | NMI (k-means, %d clusters, vs %s) | t-SNE KL |"
        % (FLAGS.num_groups, FLAGS.field))
  print("|---|---:|---:|")
  for name, result in report["models"].items():
    print("| %s | %.4f | %.3f |" % (name, result["nmi"], result["tsne_kl"]))
  sys.stdout.flush()


if __name__ == "__main__":
  cli.run(main)
