"""SSL-CFM (Yao et al., CIKM'21) and its baselines as registered experiments.

One builder, `ssl_cfm`, whose `augmentation`, `dropout_rate`, `ssl_weight`
and `feature_dropout` parameters span the paper's rows; each row also has a
name with its own defaults (Tables 2-5), so a table is a list of names:

| experiment | paper row | augmentation | dropout_rate | ssl_weight | feature_dropout |
|---|---|---|---|---|---|
| `ssl_baseline` | Baseline | none | 0 | 0 | False |
| `feature_dropout` | FD | none | 0.3 | 0 | True |
| `spread_out` | SO | none | 0 | 0.3 | False |
| `ssl_cfm` | CFM ("our method") | cfm | 0.3 | 0.3 | False |
| `ssl_rfm` | RFM | rfm | 0.3 | 0.3 | False |
| `ssl_rfm_no_complement` | RFM_no_compl | rfm_no_complement | 0.3 | 0.3 | False |
| `ssl_cfm_no_dropout` | CFM_no_dropout | cfm | 0 | 0.3 | False |
| `ssl_no_masking` | NoMasking | none | 0.3 | 0.3 | False |

All share the backbone of section 4.2: the two-tower of `dcg_tf.configs.two_tower`
with concatenated field embeddings (`item_combine="concat"`, section 3.2's
input layer), cosine scores and the batch softmax of Eq. 6 with temperature
(no log-Q correction, as Eq. 6). CFM's mutual information (Eq. 4) is
computed from the catalog when the model is built
(`dcg_tf.data.mutual_information.catalog_mutual_information`).
"""

import numpy as np

from dcg_tf.configs import two_tower
from dcg_tf.data.mutual_information import catalog_mutual_information
from dcg_tf.layers.augmentations.correlated_feature_masking import CorrelatedFeatureMasking
from dcg_tf.layers.augmentations.random_feature_masking import RandomFeatureMasking
from dcg_tf.layers.embeddings.item_embedding import ID_FIELD
from dcg_tf.models.registry import register_experiment
from dcg_tf.models.ssl_cfm import SSLCFMModel

AUGMENTATIONS = ("cfm", "rfm", "rfm_no_complement", "none")

SSL_CFM_DEFAULTS = dict(
    two_tower.COMMON_DEFAULTS,
    item_combine="concat",         # section 3.2: concatenated field embeddings
    l2_normalize=True,             # Eq. 6 and Eq. 3 score by cosine
    temperature=0.07,              # Eq. 6 (0.07 on Wikipedia, section 4.2)
    logq_correction=False,         # Eq. 6 has none
    remove_accidental_hits=True,
    all_positions=False,
    augmentation="cfm",
    dropout_rate=0.3,              # dr; Figure 7 peaks at 0.3
    ssl_weight=0.3,                # alpha; grid {0.1, 0.3, 1, 3}
    ssl_temperature=0.1,           # tau of Eq. 3
    ssl_item_distribution="uniform",
    ssl_batch_size=None,
    ssl_private_layers=0,
    feature_dropout=False,
    seed=0,
)

PARAM_HELP = dict(
    two_tower.COMMON_HELP,
    augmentation="SSL field masking (section 3.2): cfm (correlated, Eq. 4) | "
                 "rfm (random complementary split) | rfm_no_complement (two "
                 "independent random masks) | none",
    dropout_rate="dr: probability of dropping each value of a multi-valued "
                 "field in a view (second augmentation stage); 0: off",
    ssl_weight="alpha of Eq. 5, the weight of the SSL loss; 0: no SSL task",
    ssl_temperature="tau of Eq. 3, the SSL softmax temperature",
    ssl_item_distribution="where SSL items come from: uniform (the catalog, "
                          "section 3.3) | training (by training frequency)",
    ssl_batch_size="items per SSL batch; None: the training batch size",
    ssl_private_layers="top MLP layers of encoder G not shared with the item "
                       "tower H (0: G is the item tower; tables always shared)",
    feature_dropout="FD baseline: apply the augmentation to the main task's "
                    "item tower input while training",
    seed="seed of the augmentation draws (with the optimizer step)",
)


def build_masking(augmentation, item_embedding, data):
  """The masking layer of `augmentation` over the embedding's fields, or None."""
  if augmentation not in AUGMENTATIONS:
    raise ValueError("augmentation must be one of %s, got %r"
                     % (", ".join(AUGMENTATIONS), augmentation))
  names = item_embedding.field_names
  if augmentation == "none":
    return None
  if len(names) < 2:
    raise ValueError("augmentation=%s masks item fields but the item embedding "
                     "has only %s: use item_features=all or augmentation=none"
                     % (augmentation, list(names)))
  if augmentation == "rfm":
    return RandomFeatureMasking(len(names), name="masking")
  if augmentation == "rfm_no_complement":
    return RandomFeatureMasking(len(names), complementary=False, name="masking")
  fields = {name: (np.arange(data.num_items + 1) if name == ID_FIELD
                   else data.item_features[name]) for name in names}
  return CorrelatedFeatureMasking(catalog_mutual_information(fields),
                                  name="masking")


def _build(params, data):
  item_embedding = two_tower.build_item_embedding(params, data)
  user_tower = two_tower.build_user_tower(params, data, item_embedding)
  item_tower = two_tower.build_item_tower(params, data, item_embedding)
  return SSLCFMModel(
      user_tower, item_tower, two_tower.log_item_probability(data),
      masking=build_masking(params["augmentation"], item_embedding, data),
      dropout_rate=params["dropout_rate"], ssl_weight=params["ssl_weight"],
      ssl_temperature=params["ssl_temperature"],
      ssl_item_distribution=params["ssl_item_distribution"],
      ssl_batch_size=params["ssl_batch_size"],
      ssl_private_layers=params["ssl_private_layers"],
      feature_dropout=params["feature_dropout"], seed=params["seed"],
      temperature=params["temperature"],
      logq_correction=params["logq_correction"],
      remove_accidental_hits=params["remove_accidental_hits"],
      all_positions=params["all_positions"])


_VARIANTS = {
    "ssl_cfm": ({}, "SSL with correlated feature masking and value dropout "
                    "(SSL-CFM, Eq. 5)"),
    "ssl_rfm": ({"augmentation": "rfm"},
                "SSL with random complementary feature masking (RFM, Table 5)"),
    "ssl_rfm_no_complement": (
        {"augmentation": "rfm_no_complement"},
        "SSL with two independent random feature masks (RFM_no_compl, Table 5)"),
    "ssl_cfm_no_dropout": ({"dropout_rate": 0.0},
                           "SSL with correlated feature masking only "
                           "(CFM_no_dropout, Table 5)"),
    "ssl_no_masking": ({"augmentation": "none"},
                       "SSL with value dropout only (NoMasking, Table 5)"),
    "spread_out": ({"augmentation": "none", "dropout_rate": 0.0},
                   "Spread-out regularisation: Eq. 3 on un-augmented items "
                   "(SO, section 4.3)"),
    "feature_dropout": ({"augmentation": "none", "ssl_weight": 0.0,
                         "feature_dropout": True},
                        "Feature dropout in the supervised task, no SSL "
                        "(FD, section 4.3)"),
    "ssl_baseline": ({"augmentation": "none", "dropout_rate": 0.0,
                      "ssl_weight": 0.0},
                     "The SSL-CFM backbone alone: two-tower, Eq. 6 "
                     "(Baseline, section 4.3)"),
}


def _register(name, overrides, description):
  @register_experiment(name, defaults=dict(SSL_CFM_DEFAULTS, **overrides),
                       description=description, param_help=PARAM_HELP)
  def build(params, data):
    return _build(params, data)
  return build


for _name, (_overrides, _description) in _VARIANTS.items():
  _register(_name, _overrides, _description)
