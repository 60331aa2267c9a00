"""Registry of experiments: a name -> a builder and its default parameters.

Model Garden style: configs and flags turn into builder arguments here and in
`experiments/`, never inside layers. A builder has the signature
`build(params: dict, data: dcg_tf.data.dataset.ProcessedDataset) -> RetrievalModel`.

This module is a leaf: it imports no paper. The builders live in
`dcg_tf.configs` and register themselves when their module is imported
(`dcg_tf.configs.import_all()` imports them all).
"""

import dataclasses
from typing import Any, Callable, Dict


@dataclasses.dataclass(frozen=True)
class Experiment:
  name: str
  builder: Callable[..., Any]
  defaults: Dict[str, Any]
  description: str = ""
  module: str = ""   # the module that registered it (recorded in run.json)


_EXPERIMENTS: Dict[str, Experiment] = {}


def register_experiment(name, defaults=None, description=""):
  """Decorator registering `builder` under `name` with default `params`."""

  def decorator(builder):
    if name in _EXPERIMENTS:
      raise ValueError("experiment %r is registered twice" % name)
    _EXPERIMENTS[name] = Experiment(name, builder, dict(defaults or {}),
                                    description or (builder.__doc__ or "").strip(),
                                    builder.__module__)
    return builder

  return decorator


def get_experiment(name):
  if name not in _EXPERIMENTS:
    raise KeyError("unknown experiment %r; registered: %s (an experiment is "
                   "registered when its module is imported: "
                   "dcg_tf.configs.import_all() imports them all)"
                   % (name, ", ".join(sorted(_EXPERIMENTS)) or "none"))
  return _EXPERIMENTS[name]


def list_experiments():
  """The names registered so far (by the config modules imported)."""
  return sorted(_EXPERIMENTS)


def resolve_params(name, overrides=None):
  """Defaults of `name` updated by `overrides`; unknown keys are an error."""
  experiment = get_experiment(name)
  params = dict(experiment.defaults)
  for key, value in (overrides or {}).items():
    if key not in params:
      raise KeyError("experiment %r has no parameter %r; it has: %s"
                     % (name, key, ", ".join(sorted(params))))
    params[key] = value
  return params


def split_known_params(name, params):
  """(params `name` still has, sorted names of those it no longer has).

  For parameters recorded in an older `run.json`: a parameter removed from an
  experiment (e.g. the one-valued `loss` of two_tower/sasrec) is dropped, and
  the caller says so.
  """
  defaults = get_experiment(name).defaults
  known = {k: v for k, v in params.items() if k in defaults}
  return known, sorted(set(params) - set(defaults))


def build_model(name, params, data):
  return get_experiment(name).builder(params, data)

