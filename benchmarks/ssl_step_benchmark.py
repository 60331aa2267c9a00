"""Training step time of `ssl_cfm` against the same two-tower without SSL.

Issue 12 (SSL-CFM, Yao et al., CIKM'21), cost: one training step of
`ssl_cfm` (in-batch softmax + alpha x the SSL loss of Eq. 3 on two CFM-masked,
value-dropped views of a uniform batch of catalog items, Eq. 5) at most 2x the
step of `ssl_baseline` (the same backbone, ssl_weight = 0).

Both models are the registered experiments (`registry.build_model`) with the
budget of experiments/configs/ssl_cfm/*.cfg (embedding_dim 64, one hidden
layer of 256, concatenated field embeddings, cosine towers, temperature 0.07,
LazyAdam 1e-3), on a generated catalog of `--num_items` items with 8
correlated fields, one multi-valued (`synthetic.generate_correlated_fields`;
the id is a ninth field), so CFM masks 5 of 9 fields and dr = 0.3 drops
values of the multi-valued one. Batches: `--batch_size` users with
`--history_len` history items (lengths uniform in 1..L) and one target,
ids uniform over the catalog; the same main batches, in the same order, for
both models. `ssl_cfm` also gets its SSL item batch (`--batch_size` ids
uniform over the catalog, the auxiliary stream `ssl_items`), the extra input
the method needs. The two models are timed in alternating rounds in one
process (`benchmarks.common.alternating_rounds`) and the median round is
reported, wall and process CPU time, and their ratio. The mutual-information
table CFM needs is computed once when `ssl_cfm` is built; that build time is
reported apart (benchmarks/mutual_information_benchmark.py measures it at 1M
items).

  python -m benchmarks.ssl_step_benchmark            # 100K items, batch 256 x 50
  python -m benchmarks.ssl_step_benchmark --quick    # smoke test
"""

import os
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dcg_tf  # noqa: E402,F401  (Keras 2 before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from dcg_tf import configs  # noqa: E402
from dcg_tf._keras import keras  # noqa: E402
from dcg_tf.data import synthetic  # noqa: E402
from dcg_tf.models import registry  # noqa: E402
from dcg_tf.optimizers import LazyAdam  # noqa: E402

MODELS = ("ssl_baseline", "ssl_cfm")
# experiments/configs/ssl_cfm/*.cfg
BUDGET = {"hidden_units": [256], "embedding_dim": 64}


def parse_args(argv):
  parser = common.make_parser(__doc__, rounds=10, steps_per_round=5)
  parser.add_argument("--num_items", type=int, default=100_000)
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--history_len", type=int, default=50)
  return common.parse(parser, argv, quick=dict(
      num_items=500, batch_size=16, history_len=8, rounds=2, steps_per_round=2))


def catalog(num_items, seed):
  """What the experiment builders read of a dataset, on generated fields."""
  fields = synthetic.generate_correlated_fields(num_items, seed=seed)
  schema = [{"name": name, "kind": "multi" if array.ndim == 2 else "single",
             "vocab_size": int(array.max())}
            for name, array in fields.features.items()]
  counts = np.ones(num_items + 1, np.int64)
  counts[0] = 0
  return types.SimpleNamespace(schema={"item_features": schema},
                               item_features=fields.features,
                               num_items=num_items, item_count=counts)


def build_model(name, data, seed):
  keras.utils.set_random_seed(seed)
  configs.import_all()
  params = registry.resolve_params(name, dict(BUDGET, seed=seed))
  model = registry.build_model(name, params, data)
  model.compile(optimizer=LazyAdam(learning_rate=1e-3))
  return model


def make_batches(num_items, args, count=4):
  """`count` main batches, each with an SSL item batch under "aux"."""
  return common.history_batches(
      num_items, args.batch_size, args.history_len, args.seed, count,
      extra=lambda rng, b: {"aux": {"ssl_items": {
          "item": rng.integers(1, num_items + 1, b).astype(np.int64)}}})


def feed(batch, model):
  """The batch a model's step takes: the SSL stream only where it is used."""
  batch = dict(batch)
  if model.ssl_weight == 0:   # no SSL task: no auxiliary stream
    del batch["aux"]
  return tf.nest.map_structure(tf.constant, batch)


def main(argv=None):
  args = parse_args(argv)
  data = catalog(args.num_items, args.seed)
  batches = make_batches(args.num_items, args)
  setups, build_seconds, fed = {}, {}, {}
  for name in MODELS:
    start = time.perf_counter()
    model = build_model(name, data, args.seed)
    build_seconds[name] = time.perf_counter() - start
    inputs = [feed(b, model) for b in batches]
    step = tf.function(model.train_step)
    for batch in inputs:   # variables, optimizer slots, trace, warm-up
      step(batch)["loss"].numpy()
    setups[name] = (model, step, inputs)
    fed[name] = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in inputs]
    print("%s: built in %.1f s (%s)" % (name, build_seconds[name],
                                         type(model).__name__))

  runners = {name: common.stepping_round(step, inputs, args.steps_per_round)
             for name, (_, step, inputs) in setups.items()}
  for run in runners.values():   # one untimed round each (first-call costs)
    run()
  before = {name: int(model.optimizer.iterations.numpy())
            for name, (model, _, _) in setups.items()}
  wall, cpu = common.alternating_rounds(runners, args.rounds)
  steps = {name: int(model.optimizer.iterations.numpy()) - before[name]
           for name, (model, _, _) in setups.items()}
  wall = common.per_step(wall, args.steps_per_round)
  cpu = common.per_step(cpu, args.steps_per_round)
  median, median_cpu = common.median(wall), common.median(cpu)
  ratio = median["ssl_cfm"] / median["ssl_baseline"]
  ratio_cpu = median_cpu["ssl_cfm"] / median_cpu["ssl_baseline"]
  main_digest = {name: common.data_digest([{k: v for k, v in b.items()
                                            if k != "aux"} for b in fed[name]])
                 for name in MODELS}
  ssl_digest = {name: common.data_digest([b["aux"] for b in fed[name]
                                          if "aux" in b]) for name in MODELS}
  print("%d items x 9 fields, batch %d users x %d history (+ %d SSL items for "
        "ssl_cfm), %d rounds x %d steps" % (
            args.num_items, args.batch_size, args.history_len, args.batch_size,
            args.rounds, args.steps_per_round))
  for name in MODELS:
    print("%-12s median step %.2f ms wall, %.2f ms CPU (wall rounds: %s)"
          % (name, 1e3 * median[name], 1e3 * median_cpu[name],
             ", ".join("%.1f" % (1e3 * t) for t in wall[name])))
  print("step time ratio ssl_cfm / ssl_baseline: %.2f wall, %.2f CPU "
        "(issue 12 target: <= 2)" % (ratio, ratio_cpu))
  summary = {"models": list(MODELS), "num_items": args.num_items,
             "num_fields": len(setups["ssl_cfm"][0].item_tower.item_embedding
                               .field_names),
             "batch_size": args.batch_size, "history_len": args.history_len,
             "rounds": args.rounds, "steps_per_round": args.steps_per_round,
             "steps": steps, "build_seconds": build_seconds,
             "step_seconds": wall, "median_step_seconds": median,
             "step_cpu_seconds": cpu, "median_step_cpu_seconds": median_cpu,
             "main_data_digest": main_digest, "ssl_data_digest": ssl_digest,
             "ratio": ratio, "ratio_cpu": ratio_cpu,
             "load_average": list(os.getloadavg())}
  common.write_json(args.output, summary)
  return summary


if __name__ == "__main__":
  main()
