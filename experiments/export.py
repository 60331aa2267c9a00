r"""Exports a trained model's towers as SavedModels that take raw ids.

  python -m experiments.export --model_dir=DIR --export_dir=DIR [--data_dir=DIR] \
      [--checkpoint=latest|best] [--beta=0]

Rebuilds the model recorded in `model_dir/run.json`, restores its latest
checkpoint (or, with `--checkpoint=best`, the epoch with the best validation
metric, written when training ran with `--validate_every`) and writes `user_tower/`, `item_tower/`, `item_embeddings.npy`,
`item_ids.txt` and `export.json` into `export_dir`
(`dcg_tf.serving.export.export_towers`). Only the towers are exported.
With `--beta` (not 0), the item vectors carry log p(i) as an extra column and
`dcg_tf.Retriever` ranks by `s(u, i) + beta * log p(i)`
(`dcg_tf.evaluation.popularity_correction`); beta is recorded in
`export.json` as the Retriever's default.
"""

from experiments import cli  # first: quiets TensorFlow's start-up logs

import os

from absl import app
from absl import flags

from dcg_tf.serving.export import export_towers
from dcg_tf.training import checkpoint

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "A model_dir written by experiments/train.py.")
flags.DEFINE_string("export_dir", None, "Output folder (must be new or empty).")
flags.DEFINE_string("data_dir", None,
                    "Processed dataset; default: the one recorded at training.")
flags.DEFINE_bool("overwrite", False, "Write into a non-empty export_dir.")
flags.DEFINE_enum("checkpoint", "latest", list(checkpoint.CHECKPOINTS),
                  "Which weights: the end of training or the best validation epoch.")
flags.DEFINE_float("beta", 0.0,
                   "Popularity knob: not 0 adds log p(i) to the item vectors and "
                   "records beta as the Retriever's default; 0 = the plain export.")


def run(model_dir, export_dir, data_dir=None, overwrite=False, which="latest",
        beta=0.0):
  """Exports the towers of `model_dir`; returns the `export.json` dict."""
  info = checkpoint.read_run_info(model_dir)
  model, data = checkpoint.load_trained_model(model_dir, data_dir, which)
  path = checkpoint.checkpoint_path(model_dir, which)
  provenance = {"experiment": info["experiment"], "params": info["params"],
                "checkpoint": os.path.relpath(path, os.path.join(model_dir, "checkpoints"))}
  return export_towers(model.user_tower, model.item_tower, data, export_dir,
                       max_len=info["trainer"]["max_len"],
                       fingerprint_extra=provenance, overwrite=overwrite,
                       popularity_beta=beta)


def main(argv):
  del argv
  for name in ("model_dir", "export_dir"):
    if not getattr(FLAGS, name):
      raise app.UsageError("--%s is required" % name)
  content = run(FLAGS.model_dir, FLAGS.export_dir, FLAGS.data_dir, FLAGS.overwrite,
                FLAGS.checkpoint, FLAGS.beta)
  print("Exported %d items x %d dims (metric %s%s) to %s; fingerprint %s" % (
      content["num_items"], content["embedding_dim"], content["metric"],
      ", %d interests" % content["num_interests"] if content["multi_interest"] else "",
      FLAGS.export_dir, content["export_fingerprint"][:16]))


if __name__ == "__main__":
  cli.run(main)
