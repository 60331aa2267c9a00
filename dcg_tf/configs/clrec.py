"""Experiments of the CLRec paper: `clrec` and its baselines (appendix B.3).

`clrec`, `sampled_softmax`, `negative_sampling`, `shared_negative_sampling`
and `ipw` share CLRec's encoders by default (appendix B.1: the item encoder is
the sum of id and feature embeddings, the user encoder is `CLRecUserTower`,
both l2-normalised, cosine similarity with temperature 0.07), so that a
comparison between them changes only the loss. `queue_size` is the queue of
CLRec and the number of sampled negatives of the baselines (appendix B.3).
A CLRec row also sees the batch's live positives (with `all_positions`, every
position's): `num_negatives` caps it at the baselines' count
(`CLRecModel`; docs/results/clrec.md, "Negatives per row").
"""

from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.training_state.samplers import unigram
from dcg_tf.losses.ipw import fit_popularity_propensity
from dcg_tf.models.baselines import IPWModel, NegativeSamplingModel, SampledSoftmaxModel
from dcg_tf.models.clrec import CLRecModel
from dcg_tf.configs import two_tower
from dcg_tf.models.registry import register_experiment

ENCODER_DEFAULTS = dict(
    two_tower.COMMON_DEFAULTS,
    user_encoder="clrec",
    item_combine="sum",        # B.1.1 with D-wide features (id_plus_concat: literal)
    item_projection=False,     # B.1.1: g(y) is that sum, no projection layer
    l2_normalize=True,         # B.2
    temperature=0.07,          # B.2
    queue_size=2560,           # appendix A: 2,560 with batch 256
    seed=0,
    all_positions=False,       # True: every history position is a query (SASRec-style)
)

CLREC_DEFAULTS = dict(
    ENCODER_DEFAULTS,
    queue="raw",               # in_batch | raw (authors' code) | cached
    momentum=None,             # MoCo key encoder for queue=cached (Table 7)
    u2u_weight=0.0,            # > 0 co-trains the u2u task (section 4.2.2)
    u2u_queue_size=2560,
    u2u_max_after=10,
    remove_accidental_hits=True,
    num_negatives=None,        # int L: exactly L negatives per row, as the baselines' L draws
    enqueue_positions=False,   # all_positions: the queue gets every position's positive
)

SAMPLED_SOFTMAX_DEFAULTS = dict(ENCODER_DEFAULTS, proposal_power=1.0)
NEGATIVE_SAMPLING_DEFAULTS = dict(ENCODER_DEFAULTS, proposal_power=0.75)
IPW_DEFAULTS = dict(ENCODER_DEFAULTS, proposal_power=1.0,
                    propensity_smoothing=1.0, min_propensity=1e-6)


PARAM_HELP = dict(
    two_tower.COMMON_HELP,
    item_projection="item tower: a projection layer after the combined "
                    "embedding (B.1.1 has none)",
    queue_size="negatives per step: the queue length (clrec) or the "
               "number of sampled negatives (baselines)",
    seed="seed of the model's own random draws (sampled negatives)",
    queue="where negatives come from: in_batch | raw (FIFO of past "
          "positives, the authors' code) | cached (FIFO of their embeddings)",
    momentum="MoCo key-encoder momentum m for queue=cached (Table 7); "
             "None: no key encoder",
    u2u_weight="weight of the u2u task (section 4.2.2); 0: off",
    num_negatives="clrec: exactly this many negatives per row (the "
                  "baselines' count); None: every live candidate",
    enqueue_positions="clrec with all_positions: enqueue every position's "
                      "positive (the data distribution) instead of the B "
                      "batch targets",
    u2u_queue_size="queue length of the u2u task",
    u2u_max_after="u2u: the 'after' sequence holds at most this many "
                  "clicks (B.4)",
    proposal_power="sampling proposal count^power (1: popularity, "
                   "0.75: degree^0.75)",
    propensity_smoothing="ipw: additive smoothing of the popularity "
                         "propensity fitted on counts",
    min_propensity="ipw: floor of the propensity (clips the weights)",
)


def build_encoders(params, data):
  """(user_tower, item_tower) sharing one item embedding (CLRec B.1)."""
  item_embedding = two_tower.build_item_embedding(params, data)
  user_tower = two_tower.build_user_tower(params, data, item_embedding)
  if params["item_projection"]:
    item_tower = two_tower.build_item_tower(params, data, item_embedding)
  else:
    item_tower = ItemTower(item_embedding, l2_normalize=params["l2_normalize"],
                           name="item_tower")
  return user_tower, item_tower


def _proposal(params, data):
  """Popularity proposal over [N+1]: count^power (power 0.75: degree^0.75)."""
  return unigram(data.item_count, power=params["proposal_power"])


@register_experiment("clrec", defaults=CLREC_DEFAULTS,
                     param_help=PARAM_HELP)
def build_clrec(params, data):
  """CLRec (KDD'21) single queue: Eq. 3 with queue negatives (Figure 1)."""
  user_tower, item_tower = build_encoders(params, data)
  return CLRecModel(
      user_tower, item_tower, queue=params["queue"],
      queue_size=params["queue_size"], temperature=params["temperature"],
      momentum=params["momentum"], u2u_weight=params["u2u_weight"],
      u2u_queue_size=params["u2u_queue_size"],
      u2u_max_after=params["u2u_max_after"],
      remove_accidental_hits=params["remove_accidental_hits"],
      seed=params["seed"], num_negatives=params["num_negatives"],
      enqueue_positions=params["enqueue_positions"],
      all_positions=params["all_positions"])


@register_experiment("sampled_softmax", defaults=SAMPLED_SOFTMAX_DEFAULTS,
                     param_help=PARAM_HELP)
def build_sampled_softmax(params, data):
  """Sampled softmax with log-Q correction (CLRec Eq. 2) on CLRec's encoders."""
  user_tower, item_tower = build_encoders(params, data)
  return SampledSoftmaxModel(user_tower, item_tower, _proposal(params, data),
                             num_negatives=params["queue_size"],
                             temperature=params["temperature"], seed=params["seed"],
      all_positions=params["all_positions"])


def _negative_sampling(params, data, shared):
  user_tower, item_tower = build_encoders(params, data)
  return NegativeSamplingModel(user_tower, item_tower, _proposal(params, data),
                               num_negatives=params["queue_size"], shared=shared,
                               temperature=params["temperature"],
                               seed=params["seed"],
      all_positions=params["all_positions"])


@register_experiment("negative_sampling", defaults=NEGATIVE_SAMPLING_DEFAULTS,
                     param_help=PARAM_HELP)
def build_negative_sampling(params, data):
  """Negative sampling, BCE, degree^0.75 proposal (CLRec appendix B.3)."""
  return _negative_sampling(params, data, shared=False)


@register_experiment("shared_negative_sampling", defaults=NEGATIVE_SAMPLING_DEFAULTS,
                     param_help=PARAM_HELP)
def build_shared_negative_sampling(params, data):
  """Shared negative sampling: one negative set per batch, BCE (B.3)."""
  return _negative_sampling(params, data, shared=True)


@register_experiment("ipw", defaults=IPW_DEFAULTS,
                     param_help=PARAM_HELP)
def build_ipw(params, data):
  """IPW loss (CLRec Eq. 4) with a popularity propensity fitted on counts."""
  user_tower, item_tower = build_encoders(params, data)
  propensity = fit_popularity_propensity(data.item_count,
                                         params["propensity_smoothing"])
  return IPWModel(user_tower, item_tower, propensity, _proposal(params, data),
                  num_negatives=params["queue_size"],
                  temperature=params["temperature"],
                  min_propensity=params["min_propensity"], seed=params["seed"],
      all_positions=params["all_positions"])
