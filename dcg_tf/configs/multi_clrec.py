"""Experiment `multi_clrec`: Multi-CLRec (CLRec paper, section 3.2, Figure 2).

Item encoder g (Eq. 5): the `ItemEmbedding` with `item_combine="concat"`
(features concatenated, then a linear layer) inside an l2-normalised
`ItemTower` whose head (`hidden_units` ReLU layers, then a linear output
layer) completes MLP_1; it also embeds the history items. User encoder:
`MultiCLRecUserTower` (Eq. 6-9) routing the catalog's category feature;
loss: Eq. 10-13 with 1 + H queues.
Appendix A/B.3 settings: H = 16 on public data, queues 1,280 + 1,280,
rho = 0.07, lambda_1 = lambda_2 = lambda_3 = 1. Queue "raw" (Figure 1b): the
paper uses the queue without caching on regular u2i tasks (appendix A); with
"cached" this item encoder collapses (see `MultiCLRecModel`).

MLP_1-MLP_4: the paper gives no widths; each is read as "a two-layer feed
forward neural network" (appendix B.1.2, the one MLP whose depth it states):
one ReLU hidden layer of 64 units, then the linear output layer. `[]` makes
MLP_1 / MLP_3 / MLP_4 linear (the defaults before issue 10).
Eq. 9 selects h* among all H intentions (`select_occupied_only=False`, the
paper's rule); True restricts it to the intentions holding one of the user's
clicks (`MultiCLRecUserTower`).

One category per item (`category_value`). Eq. 7 routes "the embedding
corresponding to item y_t's category ID", one ID per item, and section 3.2
describes the routing as clustering the categories into H intentions; the
secondary queue of a dequeued item follows the same rule. `category_value`
says how that one ID is read from `category_feature`:
  "only"    the field is single-valued and its value is c_t's ID (default;
            a multi-valued field is refused);
  "rarest"  for a multi-valued field (e.g. MovieLens genres): the item's value
            carried by the fewest catalog items (each item counted once),
            ties to the lower id; no value -> 0 (unknown). The rarest value is
            the most specific one (the paper's production data routes by a
            fine-grained category); the first listed would be arbitrary
            (MovieLens lists genres alphabetically). Chosen once from the
            catalog here (`rarest_category`), not in a layer; a single-valued
            field is kept as it is.
Pooling the item's category embeddings instead was not chosen: routing would
then cluster value combinations (several hundred genre sets on MovieLens),
not category IDs. Eq. 5's g still sees every value of the field (the item
embedding pools them); with `share_category_embedding`, c_t is that table's
row of the chosen ID.
"""

import numpy as np

from dcg_tf.towers.multi_clrec_user_tower import MultiCLRecUserTower
from dcg_tf.configs import two_tower
from dcg_tf.models.multi_clrec import MultiCLRecModel
from dcg_tf.models.registry import register_experiment

DEFAULTS = {
    "embedding_dim": 64,
    "max_len": 50,
    "item_combine": "concat",          # Eq. 5: MLP_1 over concatenated features
    "item_features": "all",
    "hidden_units": [64],              # MLP_1 (Eq. 5): item-tower hidden layers
    "l2_normalize": True,              # cosine similarity (appendix B.2)
    "dropout": 0.0,
    "category_feature": "category",
    "share_category_embedding": True,  # c_t is g's category embedding (Eq. 5)
    "num_intentions": 16,
    "main_queue_size": 1280,
    "secondary_queue_size": 1280,
    "queue": "raw",                    # raw (Figure 1b) | cached (Figure 1c)
    "temperature": 0.07,
    "aux_weights": [1.0, 1.0, 1.0],
    "importance_hidden_units": [64],   # MLP_2 (Eq. 6)
    "aggregation_hidden_units": [64],  # MLP_3 (Eq. 8)
    "selection_hidden_units": [64],    # MLP_4 (Eq. 9)
    "use_time_gap": True,
    "num_serving_interests": 1,        # K intention vectors at serving time
    "select_occupied_only": False,     # True: h* among intentions holding a click
    "category_value": "only",          # only | rarest: c_t's ID per item (Eq. 7)
}

CATEGORY_VALUES = ("only", "rarest")


PARAM_HELP = dict(
    {k: two_tower.COMMON_HELP[k] for k in (
        "embedding_dim", "max_len", "item_features", "l2_normalize", "dropout",
        "temperature")},
    item_combine="how an item's id and feature embeddings combine (Eq. 5: "
                 "concat, MLP_1 over the concatenation)",
    hidden_units="extra item-tower layers after MLP_1",
    category_feature="single-valued item feature c_t that routes items to "
                     "intentions (Eq. 7)",
    share_category_embedding="c_t's embedding is the item embedding's "
                             "category embedding (Eq. 5)",
    num_intentions="H: intentions, one secondary queue each",
    main_queue_size="length of the main queue",
    secondary_queue_size="length of each secondary queue",
    queue="raw (Figure 1b: FIFO of past positives) | cached (Figure 1c: "
          "FIFO of their embeddings)",
    aux_weights="(l1, l2, l3) weights of the auxiliary losses (Eq. 10-12)",
    importance_hidden_units="MLP_2 widths (Eq. 6)",
    aggregation_hidden_units="MLP_3 widths (Eq. 8)",
    selection_hidden_units="MLP_4 widths (Eq. 9)",
    use_time_gap="the user tower sees the time gaps of the history",
    num_serving_interests="K intention vectors served per user",
    select_occupied_only="h* chosen among intentions holding a click (Eq. 9)",
    category_value="the one category ID per item that Eq. 7 routes: only "
                   "(category_feature is single-valued) | rarest (of a "
                   "multi-valued field, the item's value carried by the "
                   "fewest catalog items)",
)


def rarest_category(values):
  """One category ID per item: the item's rarest value in the catalog.

  values: int [N+1, F], each row an item's values, 0-padded (row 0 is the
  padding item). A value's rarity is the number of rows carrying it (each
  row once, however often it lists it). Returns int64 [N+1]: per row, its
  value carried by the fewest rows, ties to the lower id; 0 for a row
  without values. A 1-D (single-valued) column is returned as it is.
  """
  values = np.asarray(values).astype(np.int64)
  if values.ndim == 1:
    return values
  if values.ndim != 2 or (values.size and values.min() < 0):
    raise ValueError("rarest_category: values must be a 2-D array of ids >= 0, "
                     "got shape %s" % (values.shape,))
  ordered = np.sort(values, axis=1)                               # [N+1, F]
  first = np.ones_like(ordered, dtype=bool)
  first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]                # [N+1, F]
  once = ordered[first & (ordered > 0)]                           # [M]
  vocab = int(values.max()) + 1
  counts = np.bincount(once, minlength=vocab)                     # [V]
  # Rank by (count, id): key = count * V + id, smallest wins; padding last.
  key = np.where(values > 0, counts[values] * vocab + values,
                 np.iinfo(np.int64).max)                          # [N+1, F]
  best = key.min(axis=1)                                          # [N+1]
  return np.where(best == np.iinfo(np.int64).max, 0,
                  best % vocab).astype(np.int64)


def _category_spec(params, data):
  name = params["category_feature"]
  rule = params["category_value"]
  if rule not in CATEGORY_VALUES:
    raise ValueError("multi_clrec: category_value must be one of %s, got %r"
                     % (", ".join(CATEGORY_VALUES), rule))
  for spec in data.schema.get("item_features", []):
    if spec["name"] == name:
      if spec["kind"] != "single" and rule == "only":
        raise ValueError(
            "multi_clrec: item feature %r is %r-valued, and Eq. 7 routes one "
            "category per item; set --param=category_value=rarest (the "
            "item's rarest value) or name a single-valued field with "
            "--param=category_feature=<name>" % (name, spec["kind"]))
      return spec
  raise ValueError(
      "multi_clrec: the dataset has no item feature %r to route (its item "
      "features: %s); set --param=category_feature=<name>"
      % (name, [s["name"] for s in data.schema.get("item_features", [])]))


@register_experiment("multi_clrec", defaults=DEFAULTS, param_help=PARAM_HELP)
def build(params, data):
  """Multi-CLRec: intention routing, main + H secondary queues (Eq. 5-13)."""
  if not params["l2_normalize"]:
    raise ValueError("multi_clrec compares cosine similarities (Eq. 13); "
                     "l2_normalize must stay True")
  for key in ("select_occupied_only", "use_time_gap"):
    if not isinstance(params[key], bool):
      raise ValueError("multi_clrec: %s must be True or False (Python "
                       "spelling in --param), got %r" % (key, params[key]))
  spec = _category_spec(params, data)
  item_categories = data.item_features[spec["name"]]
  if params["category_value"] == "rarest":
    item_categories = rarest_category(item_categories)           # [N+1]
  item_embedding = two_tower.build_item_embedding(params, data)
  item_tower = two_tower.build_item_tower(params, data, item_embedding)
  category_embedding = None
  names = [f["name"] for f in item_embedding.features]
  if params["share_category_embedding"] and spec["name"] in names:
    category_embedding = item_embedding.feature_embeddings[
        names.index(spec["name"])]
  # g(y_t) of the history is the item tower itself: one item encoder (Eq. 5).
  user_tower = MultiCLRecUserTower(
      item_tower,
      item_categories=item_categories,
      num_categories=int(spec["vocab_size"]),
      output_dim=params["embedding_dim"],
      category_dim=params["embedding_dim"],
      num_intentions=params["num_intentions"],
      temperature=params["temperature"],
      importance_hidden_units=list(params["importance_hidden_units"]),
      aggregation_hidden_units=list(params["aggregation_hidden_units"]),
      selection_hidden_units=list(params["selection_hidden_units"]),
      num_serving_interests=params["num_serving_interests"],
      use_time_gap=params["use_time_gap"],
      category_embedding=category_embedding,
      select_occupied_only=params["select_occupied_only"],
      name="user_tower")
  return MultiCLRecModel(
      user_tower, item_tower, num_intentions=params["num_intentions"],
      main_queue_size=params["main_queue_size"],
      secondary_queue_size=params["secondary_queue_size"],
      queue=params["queue"], temperature=params["temperature"],
      aux_weights=tuple(params["aux_weights"]))
