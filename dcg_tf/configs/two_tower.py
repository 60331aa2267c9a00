"""Baseline experiments `two_tower` (YouTube-DNN mean pooling) and `sasrec`.

Both train a user tower against an item tower with the in-batch softmax
(log-Q corrected, accidental hits removed); the sampled softmax of CLRec Eq. 2
is the experiment `sampled_softmax` (`dcg_tf.configs.clrec`). The `build_*` helpers turn experiment parameters into towers and are
shared by every experiment (CLRec, Multi-CLRec, ...), so a comparison between
experiments changes only what it means to change.
"""

import numpy as np

from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.last_item_user_tower import LastItemUserTower
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from dcg_tf.models.registry import register_experiment
from dcg_tf.models.two_tower import TwoTowerModel
from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower

COMMON_DEFAULTS = {
    "embedding_dim": 64,
    "max_len": 50,
    "user_encoder": "mean",      # mean | sasrec | last_item | clrec
    "item_combine": "concat",    # concat (+ projection) | sum | id_plus_concat
    "item_features": "all",      # "all", "none", or a comma list of feature names
    "hidden_units": [],
    "l2_normalize": True,
    "dropout": 0.0,
    "num_blocks": 2,             # sasrec
    "num_heads": 1,              # sasrec
    "num_attention_heads": 4,    # clrec simplified multi-head attention (B.1.2)
    "num_time_buckets": 32,      # clrec time-bucket embedding (B.1.1)
}


# The meaning of each parameter (`--describe`); the config modules built on
# these encoders extend it.
COMMON_HELP = {
    "embedding_dim": "size D of the user and item embeddings",
    "max_len": "history length: the most recent items kept (also --max_len)",
    "user_encoder": "user tower: mean (YouTube DNN pooling) | sasrec "
                    "(self-attention) | last_item (the last history item's "
                    "features: SSL-CFM's item-to-item query) | clrec (CLRec "
                    "B.1.2 attention)",
    "item_combine": "how an item's id and feature embeddings combine: concat "
                    "(+ projection) | sum | id_plus_concat",
    "item_features": "catalog features the item embedding uses: all, none, "
                     "or a comma list of feature names",
    "hidden_units": "extra dense layers (widths) of the towers",
    "l2_normalize": "L2-normalise both towers' outputs (cosine scores)",
    "dropout": "dropout rate in the towers",
    "num_blocks": "sasrec: self-attention blocks",
    "num_heads": "sasrec: attention heads per block",
    "num_attention_heads": "clrec user tower: heads of the simplified "
                           "multi-head attention (CLRec B.1.2)",
    "num_time_buckets": "clrec user tower: time-gap buckets of the "
                        "time-bucket embedding (CLRec B.1.1)",
    "temperature": "softmax temperature dividing the scores",
    "logq_correction": "subtract log item probability from in-batch logits "
                       "(sampling-bias correction)",
    "remove_accidental_hits": "mask negatives that are the row's own positive",
    "all_positions": "train every history position on its next item "
                     "(SASRec-style) instead of one query per example",
}


def item_feature_specs(params, data):
  """The catalog features the item embedding uses, from the manifest schema."""
  wanted = params.get("item_features", "all")
  specs = [dict(spec) for spec in data.schema.get("item_features", [])]
  if wanted == "none":
    return []
  if wanted != "all":
    names = [n.strip() for n in str(wanted).split(",") if n.strip()]
    unknown = sorted(set(names) - {s["name"] for s in specs})
    if unknown:
      raise ValueError("unknown item feature(s) %s; the dataset has %s"
                       % (unknown, [s["name"] for s in specs]))
    specs = [s for s in specs if s["name"] in names]
  return specs


def build_item_embedding(params, data, name="item_embedding"):
  """ItemEmbedding shared by the item tower and the user tower's history."""
  specs = item_feature_specs(params, data)
  arrays = {s["name"]: data.item_features[s["name"]] for s in specs}
  return ItemEmbedding(
      num_items=data.num_items,
      features=[{"name": s["name"], "kind": s["kind"], "vocab_size": s["vocab_size"]}
                for s in specs],
      dim=params["embedding_dim"],
      feature_arrays=arrays,
      combine=params["item_combine"],
      name=name)


def build_item_tower(params, data, item_embedding, name="item_tower"):
  del data
  return ItemTower(item_embedding, hidden_units=list(params["hidden_units"]),
                   output_dim=params["embedding_dim"],
                   l2_normalize=params["l2_normalize"], dropout=params["dropout"],
                   name=name)


def build_user_tower(params, data, item_embedding, name="user_tower"):
  del data
  encoder = params["user_encoder"]
  if encoder == "mean":
    return MeanPoolingUserTower(item_embedding, hidden_units=list(params["hidden_units"]),
                                output_dim=params["embedding_dim"],
                                l2_normalize=params["l2_normalize"], name=name)
  if encoder == "sasrec":
    return SelfAttentionUserTower(item_embedding, max_len=params["max_len"],
                                  num_blocks=params["num_blocks"],
                                  num_heads=params["num_heads"],
                                  dropout=params["dropout"],
                                  output_dim=params["embedding_dim"],
                                  l2_normalize=params["l2_normalize"], name=name)
  if encoder == "last_item":
    return LastItemUserTower(item_embedding, hidden_units=list(params["hidden_units"]),
                             output_dim=params["embedding_dim"],
                             l2_normalize=params["l2_normalize"], name=name)
  if encoder == "clrec":
    from dcg_tf.towers.clrec_user_tower import CLRecUserTower  # pylint: disable=g-import-not-at-top
    return CLRecUserTower(item_embedding, max_len=params["max_len"],
                          num_heads=params["num_attention_heads"],
                          num_time_buckets=params["num_time_buckets"], name=name)
  raise ValueError("unknown user_encoder %r (mean | sasrec | last_item | clrec)"
                   % encoder)


def build_towers(params, data):
  item_embedding = build_item_embedding(params, data)
  return (build_user_tower(params, data, item_embedding),
          build_item_tower(params, data, item_embedding))


def log_item_probability(data):
  """log p_data(y) from training counts (unseen items get half a count)."""
  counts = np.asarray(data.item_count, np.float64).copy()
  counts[1:] = np.maximum(counts[1:], 0.5)
  counts[0] = 1.0  # padding row, never a candidate
  return np.log(counts / counts[1:].sum()).astype(np.float32)


_TWO_TOWER_DEFAULTS = dict(COMMON_DEFAULTS, temperature=0.1, logq_correction=True,
                           remove_accidental_hits=True, all_positions=False)


def _build_two_tower(params, data):
  user_tower, item_tower = build_towers(params, data)
  return TwoTowerModel(user_tower, item_tower, log_item_probability(data),
                       temperature=params["temperature"],
                       logq_correction=params["logq_correction"],
                       remove_accidental_hits=params["remove_accidental_hits"],
                       all_positions=params["all_positions"])


@register_experiment("two_tower", defaults=_TWO_TOWER_DEFAULTS, param_help=COMMON_HELP)
def build_two_tower(params, data):
  """Mean-pooling user tower (YouTube DNN) + in-batch softmax."""
  return _build_two_tower(params, data)


@register_experiment("sasrec", defaults=dict(_TWO_TOWER_DEFAULTS, user_encoder="sasrec",
                                             dropout=0.2, all_positions=True),
                     param_help=COMMON_HELP)
def build_sasrec(params, data):
  """SASRec self-attention user tower + in-batch softmax."""
  return _build_two_tower(params, data)
