"""MicRec (Xie et al., Tencent): the item CL plug-in and the `ican`/`micrec` experiments.

- The plug-in task `item_cl` (`dcg_tf.models.registry.register_auxiliary_task`):
  any experiment takes `--param=item_cl=fea,sem,sess
  --param=item_cl_weights=0.1,0.1,0.1` (and the other `item_cl_*`
  parameters below) and trains MicRec's item contrastive tasks next to its own
  loss (Eq. 8; `dcg_tf.models.item_contrastive.ItemContrastiveTasks`).
- `ican`: the ICAN-like base of section 3.6 (Eq. 6-7): `ICANUserTower` over
  the 20 most recent behaviours, an item tower of the concatenated field
  embeddings and a 3-layer MLP (128-64-64), sampled softmax over uniformly
  drawn items (`SampledSoftmaxModel` with a uniform proposal).
- `micrec`: `ican` with the three tasks on (Eq. 8).

The pairs are built from the dataset when the model is built: sessions and
their co-occurrences (`dcg_tf.data.sessions.training_cooccurrence`), title
neighbours (`dcg_tf.data.item_pairs.title_neighbours` of TF-IDF vectors of
the catalog's title tokens, or of a user's `.npy`), or shared taxonomy values
(`dcg_tf.data.item_pairs.SharedValues`).
"""

from dcg_tf.configs import two_tower
from dcg_tf.data import item_pairs
from dcg_tf.data.sessions import training_cooccurrence
from dcg_tf.errors import InputError
from dcg_tf.models.baselines import SampledSoftmaxModel
from dcg_tf.models.item_contrastive import ItemContrastiveTasks
from dcg_tf.models.item_contrastive import TASKS
from dcg_tf.models.registry import register_auxiliary_task
from dcg_tf.models.registry import register_experiment
from dcg_tf.towers.ican_user_tower import ICANUserTower
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.training_state.samplers import uniform

TITLE_FEATURES = ("title_token", "text_token")   # catalog features read as titles

ITEM_CL_DEFAULTS = dict(
    item_cl="",                     # comma list of fea, sem, sess ("" = off)
    item_cl_weights=0.1,            # lambda_1..3 of Eq. 8: one number or one per task
    item_cl_temperature=1.0,        # tau (section 5.3)
    item_cl_negatives=50,           # negatives per anchor of sem/sess (section 5.3)
    item_cl_positives=1,            # positives per anchor of sem/sess
    item_cl_feature_dropout="element",   # element | field | value (section 3.3)
    item_cl_mask_ratio=0.5,         # section 4.1
    item_cl_sem_source="auto",      # auto | title | taxonomy
    item_cl_title_feature="auto",   # auto: title_token, else text_token
    item_cl_title_embeddings="",    # a .npy [N, D] instead of TF-IDF
    item_cl_title_k=10,             # top-k title neighbours (Faiss)
    item_cl_taxonomy="auto",        # auto: every item feature except titles
    item_cl_session_window=None,    # None: whole sessions; int: sliding window
    item_cl_same_category="",       # a single-valued feature (section 4.1)
    item_cl_anchors="popularity",   # popularity | uniform
    item_cl_positive_in_denominator=False,
    item_cl_projector_hidden_units=[],
    item_cl_batch_size=None,
    item_cl_seed=0,
)

ITEM_CL_HELP = dict(
    item_cl="MicRec item CL tasks to add: comma list of fea (Eq. 3), sem "
            "(Eq. 4), sess (Eq. 5); empty: none",
    item_cl_weights="lambda weights of Eq. 8: one number for every task or a "
                    "comma list in the order of item_cl",
    item_cl_temperature="tau of Eq. 3-5",
    item_cl_negatives="negatives per anchor of the sem and sess tasks",
    item_cl_positives="positives drawn per anchor of the sem and sess tasks",
    item_cl_feature_dropout="fea augmentation: element (dropout of the "
                            "concatenated field embeddings) | field (whole "
                            "fields to zero) | value (values of multi-valued "
                            "features)",
    item_cl_mask_ratio="drop probability of the fea augmentation",
    item_cl_sem_source="sem positives: title (top-k title neighbours) | "
                       "taxonomy (items sharing a category, genre, tag, ...) | "
                       "auto (title when the data has titles, else taxonomy)",
    item_cl_title_feature="catalog feature holding title tokens (auto: "
                          "title_token, else text_token)",
    item_cl_title_embeddings="path of a .npy [N, D] of title embeddings (row r = "
                             "item r+1); empty: TF-IDF of the title tokens",
    item_cl_title_k="title neighbours per item (positives of sem)",
    item_cl_taxonomy="catalog features whose shared values make sem "
                     "positives: auto (all but titles) or a comma list",
    item_cl_session_window="sess: None counts whole sessions (1-hour gap); an "
                           "int W counts events less than W apart (data "
                           "without timestamps: W, default 10)",
    item_cl_same_category="sess: keep co-occurrences within this "
                          "single-valued feature (e.g. category); empty: all",
    item_cl_anchors="how sem/sess anchors are drawn: popularity | uniform",
    item_cl_positive_in_denominator="InfoNCE (positive in the denominator) "
                                     "instead of Eq. 3-5 as written",
    item_cl_projector_hidden_units="hidden layers of the projectors MLP_f, "
                                   "MLP_t, MLP_s (empty: one linear layer)",
    item_cl_batch_size="anchors per sem/sess batch; None: the batch size",
    item_cl_seed="seed of the fea augmentation draws (with the step)",
)


def parse_tasks(value):
  """`"fea,sem"` / `["fea", "sem"]` -> ("fea", "sem")."""
  if value in (None, "", (), []):
    return ()
  names = value.split(",") if isinstance(value, str) else list(value)
  names = tuple(str(n).strip() for n in names if str(n).strip())
  unknown = sorted(set(names) - set(TASKS))
  if unknown:
    raise InputError("item_cl: unknown task(s) %s; choose from %s"
                     % (unknown, ",".join(TASKS)))
  return names


def parse_weights(value, tasks):
  """One number for all tasks, or one per task in the order of `tasks`."""
  if isinstance(value, str):
    value = [v for v in value.split(",") if v.strip()]
  if isinstance(value, (list, tuple)):
    if len(value) == 1:
      value = value[0]
    elif len(value) != len(tasks):
      raise InputError("item_cl_weights has %d values for the %d tasks %s"
                       % (len(value), len(tasks), ",".join(tasks)))
    else:
      return {t: float(w) for t, w in zip(tasks, value)}
  return {t: float(value) for t in tasks}


def _title_relation(params, data):
  if params["item_cl_title_embeddings"]:
    vectors = item_pairs.load_title_embeddings(params["item_cl_title_embeddings"],
                                               data.num_items)
  else:
    feature = params["item_cl_title_feature"]
    if feature == "auto":
      feature = next((f for f in TITLE_FEATURES if f in data.item_features), None)
    if feature not in data.item_features:
      raise InputError("item_cl sem with titles: %s has no title feature (%s); "
                       "give --param=item_cl_title_embeddings=FILE.npy or "
                       "--param=item_cl_sem_source=taxonomy"
                       % (data.directory, feature or "/".join(TITLE_FEATURES)))
    vectors = item_pairs.title_tfidf(data.item_features[feature])
  return item_pairs.title_neighbours(vectors, int(params["item_cl_title_k"]))


def _taxonomy_relation(params, data):
  names = params["item_cl_taxonomy"]
  if names == "auto":
    names = [f for f in data.item_features if f not in TITLE_FEATURES]
  else:
    names = [n.strip() for n in str(names).split(",") if n.strip()]
  unknown = sorted(set(names) - set(data.item_features))
  if unknown or not names:
    raise InputError("item_cl_taxonomy: %s has no feature(s) %s (it has %s)"
                     % (data.directory, unknown or "to share",
                        sorted(data.item_features)))
  return item_pairs.SharedValues.from_catalog(
      {n: data.item_features[n] for n in names})


def _session_relation(params, data):
  graph = training_cooccurrence(data, window=params["item_cl_session_window"])
  category = params["item_cl_same_category"]
  if category:
    if category not in data.item_features or data.item_features[category].ndim != 1:
      raise InputError("item_cl_same_category=%s is not a single-valued item "
                       "feature of %s" % (category, data.directory))
    graph = graph.restrict(data.item_features[category])
  return graph


def build_item_contrastive(params, data, item_tower):
  """The `ItemContrastiveTasks` that `params` describe, pairs built from `data`."""
  tasks = parse_tasks(params["item_cl"])
  relations = {}
  if "sem" in tasks:
    source = params["item_cl_sem_source"]
    if source == "auto":
      has_title = (params["item_cl_title_embeddings"]
                   or any(f in data.item_features for f in TITLE_FEATURES))
      source = "title" if has_title else "taxonomy"
    if source not in ("title", "taxonomy"):
      raise InputError("item_cl_sem_source must be auto, title or taxonomy, "
                       "got %r" % source)
    relations["sem"] = (_title_relation(params, data) if source == "title"
                        else _taxonomy_relation(params, data))
  if "sess" in tasks:
    relations["sess"] = _session_relation(params, data)
  return ItemContrastiveTasks(
      tasks, parse_weights(params["item_cl_weights"], tasks),
      relations=relations,
      anchor_probability=item_pairs.anchor_probabilities(
          data.item_count, params["item_cl_anchors"]),
      projection_dim=item_tower.embedding_dim,
      projector_hidden_units=list(params["item_cl_projector_hidden_units"] or []),
      temperature=params["item_cl_temperature"],
      num_positives=params["item_cl_positives"],
      num_negatives=params["item_cl_negatives"],
      feature_dropout=params["item_cl_feature_dropout"],
      mask_ratio=params["item_cl_mask_ratio"],
      positive_in_denominator=params["item_cl_positive_in_denominator"],
      batch_size=params["item_cl_batch_size"], seed=params["item_cl_seed"],
      name="item_contrastive")


@register_auxiliary_task("item_cl", defaults=ITEM_CL_DEFAULTS,
                         enabled=lambda params: bool(parse_tasks(params["item_cl"])),
                         param_help=ITEM_CL_HELP)
def attach_item_contrastive(model, params, data):
  """Adds MicRec's item CL tasks to a built model (training only)."""
  model.add_auxiliary_task(build_item_contrastive(params, data, model.item_tower),
                           name="item_contrastive")
  return model


# === Experiments ===

ICAN_DEFAULTS = dict(
    {k: v for k, v in two_tower.COMMON_DEFAULTS.items()
     if k not in ("user_encoder", "num_attention_heads", "num_time_buckets")},
    item_combine="concat",          # section 3.6: field embeddings concatenated
    hidden_units=[128, 64],         # 3-layer MLPs 128-64-64 (the 64 output last)
    l2_normalize=True,
    num_behaviors=20,               # section 5.3: the 20 most recent clicks
    num_blocks=1,
    num_heads=2,
    user_features="all",            # the other user features of Eq. 6
    temperature=0.07,
    queue_size=512,                 # sampled negatives of Eq. 7
    seed=0,
    all_positions=False,
)

ICAN_HELP = dict(
    two_tower.COMMON_HELP,
    num_behaviors="behaviours the ICAN user tower flattens (the most recent)",
    user_features="user features concatenated in Eq. 6: all, none, or a comma "
                  "list (users.npz)",
    queue_size="uniformly drawn negatives of the sampled softmax (Eq. 7)",
    seed="seed of the sampled negatives",
    num_blocks="ICAN user tower: Transformer blocks",
    num_heads="ICAN user tower: attention heads",
)


def _user_feature_arrays(params, data):
  wanted = params["user_features"]
  names = [s["name"] for s in data.schema.get("user_features", [])
           if s["name"] in data.user_features]
  if wanted == "none":
    return {}, []
  if wanted != "all":
    asked = [n.strip() for n in str(wanted).split(",") if n.strip()]
    unknown = sorted(set(asked) - set(names))
    if unknown:
      raise InputError("user_features: %s has no user feature(s) %s (it has %s)"
                       % (data.directory, unknown, names))
    names = asked
  specs = {s["name"]: s for s in data.schema["user_features"]}
  return ({n: data.user_features[n] for n in names},
          [{"name": n, "vocab_size": specs[n]["vocab_size"]} for n in names])


def _build_ican(params, data):
  item_embedding = two_tower.build_item_embedding(params, data)
  arrays, features = _user_feature_arrays(params, data)
  user_tower = ICANUserTower(
      item_embedding, num_behaviors=params["num_behaviors"],
      num_blocks=params["num_blocks"], num_heads=params["num_heads"],
      dropout=params["dropout"], hidden_units=list(params["hidden_units"]),
      output_dim=params["embedding_dim"], l2_normalize=params["l2_normalize"],
      user_features=features, user_feature_arrays=arrays, name="user_tower")
  item_tower = ItemTower(item_embedding, hidden_units=list(params["hidden_units"]),
                         output_dim=params["embedding_dim"],
                         l2_normalize=params["l2_normalize"],
                         dropout=params["dropout"], name="item_tower")
  return SampledSoftmaxModel(user_tower, item_tower, uniform(data.num_items),
                             num_negatives=params["queue_size"],
                             temperature=params["temperature"],
                             seed=params["seed"],
                             all_positions=params["all_positions"])


@register_experiment("ican", defaults=ICAN_DEFAULTS, param_help=ICAN_HELP,
                     description="ICAN-like base of MicRec (section 3.6, Eq. "
                                 "6-7): Transformer over the 20 latest "
                                 "behaviours, MLPs 128-64-64, sampled softmax")
def build_ican(params, data):
  return _build_ican(params, data)


@register_experiment("micrec",
                     defaults=dict(ICAN_DEFAULTS, item_cl="fea,sem,sess"),
                     param_help=dict(ICAN_HELP, **ITEM_CL_HELP),
                     description="MicRec (Eq. 8): the ICAN-like base plus the "
                                 "feature-, semantic- and session-level item CL")
def build_micrec(params, data):
  # The registry attaches the item CL tasks (item_cl is on by default here).
  return _build_ican(params, data)
