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
  param_help: Dict[str, str] = dataclasses.field(default_factory=dict)


_EXPERIMENTS: Dict[str, Experiment] = {}


def register_experiment(name, defaults=None, description="", param_help=None):
  """Decorator registering `builder` under `name` with default `params`.

  Args:
    name: the experiment's name (`--model`).
    defaults: parameter name -> default value.
    description: one line; default the builder's docstring.
    param_help: parameter name -> its meaning in one line (shown by
      `python -m experiments.train --describe=NAME`); may hold more names
      than `defaults` (a config module's shared dict).
  """

  def decorator(builder):
    if name in _EXPERIMENTS:
      raise ValueError("experiment %r is registered twice" % name)
    params = dict(defaults or {})
    _EXPERIMENTS[name] = Experiment(
        name, builder, params, description or (builder.__doc__ or "").strip(),
        builder.__module__,
        {k: v for k, v in (param_help or {}).items() if k in params})
    return builder

  return decorator


def get_experiment(name):
  if name not in _EXPERIMENTS:
    raise KeyError("unknown experiment %r; registered: %s (an experiment is "
                   "registered when its module is imported: "
                   "dcg_tf.configs.import_all() imports them all)"
                   % (name, ", ".join(sorted(_EXPERIMENTS)) or "none"))
  return _EXPERIMENTS[name]


def describe(name):
  """`[(parameter, default, meaning)]` of experiment `name`, sorted by name.

  The meaning is "" for a parameter registered without one.
  """
  experiment = get_experiment(name)
  return [(key, experiment.defaults[key], experiment.param_help.get(key, ""))
          for key in sorted(experiment.defaults)]


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
  """(the parameters to build `name` with, sorted names it no longer has).

  For parameters recorded in an older `run.json`: a parameter removed from an
  experiment (e.g. the one-valued `loss` of two_tower/sasrec) is dropped, and
  the caller says so; a parameter added since takes its default, which by the
  house rule reproduces the behaviour from before it existed (e.g. clrec's
  `num_negatives=None`).
  """
  defaults = get_experiment(name).defaults
  known = dict(defaults)
  known.update({k: v for k, v in params.items() if k in defaults})
  return known, sorted(set(params) - set(defaults))


def build_model(name, params, data):
  return get_experiment(name).builder(params, data)

