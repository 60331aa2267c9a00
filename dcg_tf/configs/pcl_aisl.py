"""PCL-AISL (Li et al., CIKM'22) and its multi-interest baselines (Table 1).

| experiment | user tower | training reduction (`MultiInterestModel`) | extra |
|---|---|---|---|
| `mind` | MIND: shared-map capsules (random routing start), ReLU projection | label_aware (MIND Eq. 9, p = `label_power`) | `dynamic_interests` option (MIND's K'_u) |
| `comirec_dr` | ComiRec-DR: per-position capsules (zero routing start) | hard (ComiRec's argmax readout) | |
| `comirec_sa` | ComiRec-SA: self-attentive, position embedding | hard | |
| `pcl_aisl` | `interest_extractor` + AISL (section 2.2) | max over the K_u active interests | L_self (Eq. 11) + L_p (Eq. 12), Eq. 14 |
| `pcl_aisl_no_pcl` | as `pcl_aisl` | max | AISL alone (alpha = beta = 0) |
| `pcl_aisl_no_aisl` | as `pcl_aisl` without AISL (fixed K) | max | PCL alone |

All: the l2-normalised `ItemTower` (concatenated features, a linear
projection: the query encoder G of Eq. 7 is its head) embeds targets,
negatives and the history; Eq. 1's BCE on cosine / `temperature` with
`num_negatives` negatives per example from item_count^`proposal_power`;
K = `num_interests` (4 and 5 in Table 1).
|C| = min(`num_prototypes`, N / 10) (1,000 in section 3.1 for catalogs of
60k-310k items; at least 10 items per prototype on a small catalog) and
r = min(`num_negative_prototypes`, |C| - 1).
The paper gives no alpha, beta, T, mask size or momentum: the defaults
below are ours.
"""

from dcg_tf.configs import two_tower
from dcg_tf.layers.interests.adaptive_interest_selection import AdaptiveInterestSelection
from dcg_tf.layers.interests.capsule_interest_extractor import CapsuleInterestExtractor
from dcg_tf.layers.interests.label_aware_attention import LabelAwareAttention
from dcg_tf.layers.interests.self_attentive_interest_extractor import (
    SelfAttentiveInterestExtractor)
from dcg_tf.models.multi_interest import MultiInterestModel
from dcg_tf.models.pcl_aisl import PCLAISLModel
from dcg_tf.models.registry import register_experiment
from dcg_tf.training_state.samplers import unigram
from dcg_tf.towers.multi_interest_user_tower import MultiInterestUserTower

EXTRACTORS = ("mind", "comirec_dr", "comirec_sa")

COMMON = {
    "embedding_dim": 64,
    "max_len": 50,
    "item_combine": "concat",
    "item_features": "all",
    "hidden_units": [],
    "l2_normalize": True,
    "dropout": 0.0,
    "num_interests": 4,              # K (Table 1: 4 Kindle, 5 Books)
    "num_negatives": 10,             # S per example (ComiRec code: neg_num = 10)
    "temperature": 0.1,              # T of Eq. 1 (the paper: sigmoid(cos), T = 1)
    "proposal_power": 0.75,          # negatives ~ item_count^0.75
    "routing_iterations": 3,
    "label_power": 1.0,              # MIND p (the ComiRec code's pow(., 1))
    "seed": 0,
}

PARAM_HELP = dict(
    {k: two_tower.COMMON_HELP[k] for k in (
        "embedding_dim", "max_len", "item_combine", "item_features",
        "hidden_units", "dropout")},
    l2_normalize="L2-normalise the item tower (cosine scores, Eq. 1); must stay True",
    num_interests="K: interest vectors per user (Table 1: 4 or 5)",
    num_negatives="negatives per example in Eq. 1's BCE",
    temperature="T dividing the cosine before the sigmoid of Eq. 1 (1 = the paper)",
    proposal_power="negatives drawn with probability item_count^power (0: uniform)",
    routing_iterations="dynamic routing iterations (MIND / ComiRec-DR: 3)",
    label_power="p of MIND's label-aware attention (Eq. 9), applied as sign(x)|x|^p",
    seed="seed of the negative sampler, routing start and augmentation draws",
    reduction="how K interests score an item in training: max (over active "
              "interests) | hard (argmax readout) | label_aware (MIND Eq. 9)",
    interest_extractor="multi-interest extract layer: mind | comirec_dr | comirec_sa",
    projection="per-interest Dense(D, relu) after the extractor (ComiRec's MIND)",
    dynamic_interests="MIND's K'_u = max(1, min(K, floor(log2 n_u))) active interests",
    use_positions="ComiRec-SA: add a position embedding inside the attention",
    aisl="Adaptive Interest Selection Layer (section 2.2): learn K_u <= K",
    aisl_hidden_units="hidden widths of the AISL MLP (Eq. 2)",
    aisl_temperature="T of Eq. 5",
    aisl_relaxation="s_hat of Eq. 5: softmax (as printed) | cumulative (P(K_u >= k))",
    ssl_weight="alpha of Eq. 14 (L_self, Eq. 11); 0: off",
    prototype_weight="beta of Eq. 14 (L_p, Eq. 12); 0: off",
    ssl_temperature="T of Eq. 11",
    momentum="alpha of Eq. 10, the key encoder's momentum",
    mask_fraction="share of the embedding's D elements the random mask keeps (section 2.3.1)",
    num_prototypes="|C|, capped at N/10 (section 3.1: 1000)",
    num_negative_prototypes="r negative prototypes per item (Eq. 12; 100), capped at |C|-1",
    kmeans_iterations="Faiss k-means iterations per epoch refresh",
)

BASELINES = {
    "mind": (dict(interest_extractor="mind", projection=True,
                  dynamic_interests=False, reduction="label_aware"),
             "MIND: capsule routing + label-aware attention (Li et al., CIKM'19)"),
    "comirec_dr": (dict(interest_extractor="comirec_dr", projection=False,
                        reduction="hard"),
                   "ComiRec-DR: dynamic routing, argmax readout (Cen et al., KDD'20)"),
    "comirec_sa": (dict(interest_extractor="comirec_sa", use_positions=True,
                        projection=False, reduction="hard"),
                   "ComiRec-SA: self-attentive interests, argmax readout "
                   "(Cen et al., KDD'20)"),
}

PCL_AISL = dict(
    interest_extractor="mind", projection=True, reduction="max", aisl=True,
    aisl_hidden_units=[32], aisl_temperature=1.0, aisl_relaxation="softmax",
    ssl_weight=0.1, prototype_weight=0.1, ssl_temperature=0.1, momentum=0.999,
    mask_fraction=0.75, num_prototypes=1000, num_negative_prototypes=100,
    kmeans_iterations=20)

VARIANTS = {
    "pcl_aisl": ({}, "PCL-AISL: AISL + prototypical contrastive learning, "
                     "Eq. 14 (Li et al., CIKM'22)"),
    "pcl_aisl_no_pcl": ({"ssl_weight": 0.0, "prototype_weight": 0.0},
                        "PCL-AISL without the prototypical module (AISL alone)"),
    "pcl_aisl_no_aisl": ({"aisl": False},
                         "PCL-AISL without AISL (PCL on a fixed-K tower)"),
}


def build_extractor(params):
  name = params["interest_extractor"]
  k, max_len = params["num_interests"], params["max_len"]
  if name == "mind":
    return CapsuleInterestExtractor(k, max_len, bilinear="shared",
                                    iterations=params["routing_iterations"],
                                    seed=params["seed"], name="extractor")
  if name == "comirec_dr":
    return CapsuleInterestExtractor(k, max_len, bilinear="per_position",
                                    iterations=params["routing_iterations"],
                                    seed=params["seed"], name="extractor")
  if name == "comirec_sa":
    return SelfAttentiveInterestExtractor(
        k, max_len, use_positions=params.get("use_positions", True),
        seed=params["seed"], name="extractor")
  raise ValueError("interest_extractor must be one of %s, got %r"
                   % (", ".join(EXTRACTORS), name))


def build_user_tower(params, item_tower):
  selection = None
  if params.get("aisl", False):
    selection = AdaptiveInterestSelection(
        params["num_interests"], hidden_units=list(params["aisl_hidden_units"]),
        temperature=params["aisl_temperature"],
        relaxation=params["aisl_relaxation"], name="interest_selection")
  return MultiInterestUserTower(
      item_tower, build_extractor(params), params["num_interests"],
      output_dim=params["embedding_dim"] if params.get("projection") else None,
      interest_selection=selection,
      dynamic_interests=params.get("dynamic_interests", False),
      label_attention=LabelAwareAttention(params["label_power"],
                                          name="label_attention"),
      name="user_tower")


def _build(params, data):
  if not params["l2_normalize"]:
    raise ValueError("%s scores by cosine (Eq. 1); l2_normalize must stay True"
                     % params.get("interest_extractor"))
  item_embedding = two_tower.build_item_embedding(params, data)
  item_tower = two_tower.build_item_tower(params, data, item_embedding)
  user_tower = build_user_tower(params, item_tower)
  kwargs = dict(proposal=unigram(data.item_count, params["proposal_power"]),
                num_negatives=params["num_negatives"],
                temperature=params["temperature"],
                reduction=params["reduction"], seed=params["seed"])
  if not (params.get("ssl_weight", 0) or params.get("prototype_weight", 0)):
    return MultiInterestModel(user_tower, item_tower, **kwargs)
  num_prototypes = min(int(params["num_prototypes"]),
                       max(2, data.num_items // 10))
  return PCLAISLModel(
      user_tower, item_tower, ssl_weight=params["ssl_weight"],
      prototype_weight=params["prototype_weight"],
      ssl_temperature=params["ssl_temperature"], momentum=params["momentum"],
      mask_ones=max(1, round(params["mask_fraction"] * item_embedding.dim)),
      num_prototypes=num_prototypes,
      num_negative_prototypes=min(int(params["num_negative_prototypes"]),
                                  num_prototypes - 1),
      kmeans_iterations=params["kmeans_iterations"], **kwargs)


def _register(name, defaults, description):
  @register_experiment(name, defaults=defaults, description=description,
                       param_help=PARAM_HELP)
  def build(params, data):
    return _build(params, data)
  return build


for _name, (_overrides, _description) in BASELINES.items():
  _register(_name, dict(COMMON, **_overrides), _description)
for _name, (_overrides, _description) in VARIANTS.items():
  _register(_name, dict(COMMON, **dict(PCL_AISL, **_overrides)), _description)
