"""One MicRec training step (base + fea + sem + sess) vs the base model's step.

MicRec (Xie et al., Tencent) section 4: "the offline training time of MicRec
is less than twice that of the base model". This benchmark builds the two
registered experiments `ican` (the ICAN-like base, Eq. 6-7) and `micrec`
(the base plus the three item CL tasks, Eq. 8) with the budget of
experiments/configs/micrec/ (64-d, MLPs 128-64-64, 512 uniformly sampled
negatives, batch 256, the 20 latest behaviours, lazy Adam; lambda 1.0 / 0.1 /
0.1, 50 negatives per sem/sess anchor) on one generated dataset (Amazon-style
synthetic reviews with titles, categories, brands and one-hour sessions),
and times `model.train_step` (under `tf.function`, as the trainer runs it) in
alternating rounds (`benchmarks.common.alternating_rounds`), so that other
load on the machine hits both alike. Both models train on the same main
batches (the same digest) in the same order; MicRec's batches also carry its
two pair streams (`batch["aux"]`), drawn before timing like the main batches,
so the input pipeline is not timed. Reported: the median step (wall and process
CPU seconds) of each and their ratio.

  python -m benchmarks.micrec_step_benchmark                    # 100k events
  python -m benchmarks.micrec_step_benchmark --quick            # smoke size
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf import configs  # noqa: E402
from dcg_tf._keras import keras  # noqa: E402
from dcg_tf.data import synthetic  # noqa: E402
from dcg_tf.data.dataset import ProcessedDataset  # noqa: E402
from dcg_tf.data.loaders import LOADERS  # noqa: E402
from dcg_tf.data.preprocess import PreprocessConfig, preprocess  # noqa: E402
from dcg_tf.models import registry  # noqa: E402
from dcg_tf.optimizers import get_optimizer  # noqa: E402
from dcg_tf.training import trainer as trainer_lib  # noqa: E402

# The budget of experiments/configs/micrec/ (ican.cfg, micrec.cfg).
BUDGET = dict(embedding_dim=64, hidden_units=[128, 64], temperature=0.07,
              queue_size=512)
ITEM_CL = dict(item_cl="fea,sem,sess", item_cl_weights=[1.0, 0.1, 0.1])
MODELS = ("ican", "micrec")


def parse_args(argv):
  parser = common.make_parser(__doc__, rounds=9, steps_per_round=5)
  parser.add_argument("--num_events", type=int, default=100_000,
                      help="synthetic reviews before the 5-core filter")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--max_len", type=int, default=20)
  parser.add_argument("--num_batches", type=int, default=4,
                      help="distinct batches, cycled through in each round")
  return common.parse(parser, argv, quick=dict(
      num_events=3000, batch_size=32, rounds=2, steps_per_round=2,
      num_batches=2))


def make_data(num_events, seed, work_dir):
  """A processed dataset of synthetic Amazon-style reviews (5-core)."""
  events = synthetic.generate(num_events, seed=seed)
  raw_files = synthetic.write_amazon_2014(events, os.path.join(work_dir, "raw"))
  out = os.path.join(work_dir, "data")
  preprocess(LOADERS["amazon"](raw_files), out,
             PreprocessConfig(min_user_interactions=5, min_item_interactions=5),
             input_paths=raw_files, source_format="amazon")
  return ProcessedDataset.load(out)


def build(name, data, args):
  """The registered experiment `name` with the tables' budget, compiled."""
  keras.utils.set_random_seed(args.seed)
  params = dict(BUDGET, max_len=args.max_len, seed=args.seed)
  if name == "micrec":
    params.update(ITEM_CL)
  model = registry.build_model(name, registry.resolve_params(name, params), data)
  model.optimizer = get_optimizer("lazy_adam", 1e-3)
  return model


def batches_of(model, data, args):
  """The first `num_batches` training batches of epoch 0 (with the streams)."""
  config = trainer_lib.TrainerConfig(batch_size=args.batch_size,
                                     max_len=args.max_len, seed=args.seed,
                                     all_prefixes=True)
  dataset = trainer_lib.training_dataset(model, data, config, epoch=0)
  return list(dataset.take(args.num_batches))


def main_part(batch):
  """The main batch (what both models train on): everything but "aux"."""
  return {k: v for k, v in batch.items() if k != "aux"}


def main(argv=None):
  args = parse_args(argv)
  configs.import_all()
  work = tempfile.mkdtemp(prefix="dcg_micrec_step_bench_")
  try:
    start = time.perf_counter()
    data = make_data(args.num_events, args.seed, work)
    print("data: %d users, %d items, %d training events (%.1f s)"
          % (data.num_users, data.num_items,
             int(data.manifest["counts"]["train_interactions"]),
             time.perf_counter() - start))
    setups, digests, aux_digests, losses = {}, {}, {}, {}
    for name in MODELS:
      start = time.perf_counter()
      model = build(name, data, args)
      batches = batches_of(model, data, args)
      step = tf.function(model.train_step, reduce_retracing=True)
      for batch in batches + batches:   # build variables and slots, trace,
        out = step(batch)                # warm up
      losses[name] = {k: float(v) for k, v in out.items()}
      digests[name] = common.data_digest([main_part(b) for b in batches])
      aux_digests[name] = common.data_digest([b.get("aux", {}) for b in batches])
      setups[name] = (step, batches)
      print("%s: built and warmed up in %.1f s; last loss %s"
            % (name, time.perf_counter() - start,
               ", ".join("%s=%.4f" % kv for kv in sorted(losses[name].items()))))
  finally:
    shutil.rmtree(work, ignore_errors=True)

  runners = {name: common.stepping_round(*setups[name], args.steps_per_round)
             for name in MODELS}
  for run in runners.values():   # one untimed round each (the first call after
    run()                        # the other model's warm-up can stall)
  load_before = list(os.getloadavg())
  wall, cpu = common.alternating_rounds(runners, args.rounds)
  wall = common.per_step(wall, args.steps_per_round)
  cpu = common.per_step(cpu, args.steps_per_round)
  median, median_cpu = common.median(wall), common.median(cpu)
  ratio = median["micrec"] / median["ican"]
  ratio_cpu = median_cpu["micrec"] / median_cpu["ican"]
  for name in MODELS:
    print("%-6s median step %.1f ms wall, %.1f ms CPU (wall rounds: %s)"
          % (name, 1e3 * median[name], 1e3 * median_cpu[name],
             ", ".join("%.1f" % (1e3 * t) for t in wall[name])))
  print("micrec / ican step time: %.2f wall, %.2f CPU (the paper: < 2)"
        % (ratio, ratio_cpu))
  summary = {
      "num_events": args.num_events, "num_users": int(data.num_users),
      "num_items": int(data.num_items), "batch_size": args.batch_size,
      "max_len": args.max_len, "rounds": args.rounds,
      "steps_per_round": args.steps_per_round, "budget": BUDGET,
      "item_cl": ITEM_CL, "step_seconds": wall, "step_cpu_seconds": cpu,
      "median_step_seconds": median, "median_step_cpu_seconds": median_cpu,
      "ratio": ratio, "ratio_cpu": ratio_cpu, "data_digest": digests,
      "aux_digest": aux_digests, "last_losses": losses,
      "cpus": len(os.sched_getaffinity(0)),
      "load_average": {"before": load_before, "after": list(os.getloadavg())}}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
