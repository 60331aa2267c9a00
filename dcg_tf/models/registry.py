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


@dataclasses.dataclass(frozen=True)
class AuxiliaryTask:
  """A plug-in task any experiment can switch on by its parameters.

  `attach(model, params, data)` adds it to a built model
  (`dcg_tf.models.base.RetrievalModel.add_auxiliary_task`) when `enabled(params)`.
  Its parameters are accepted by every experiment and appear in a run's
  parameters only when given, so runs that do not use it are unchanged.
  """
  name: str
  attach: Callable[..., Any]
  defaults: Dict[str, Any]
  enabled: Callable[[Dict[str, Any]], bool]
  module: str = ""
  param_help: Dict[str, str] = dataclasses.field(default_factory=dict)


_EXPERIMENTS: Dict[str, Experiment] = {}
_TASKS: Dict[str, AuxiliaryTask] = {}


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


def register_auxiliary_task(name, defaults, enabled, param_help=None):
  """Decorator registering `attach(model, params, data)` as a plug-in task.

  Args:
    name: the task's name (e.g. "item_cl", MicRec's item contrastive tasks).
    defaults: its parameters. An experiment that lists some of them among
      its own defaults switches the task on by default (e.g. `micrec`).
    enabled: `params -> bool`, whether the given parameters switch it on.
    param_help: parameter name -> its meaning in one line.
  """

  def decorator(attach):
    if name in _TASKS:
      raise ValueError("auxiliary task %r is registered twice" % name)
    _TASKS[name] = AuxiliaryTask(name, attach, dict(defaults), enabled,
                                 attach.__module__, dict(param_help or {}))
    return attach

  return decorator


def list_auxiliary_tasks():
  """The plug-in tasks registered so far."""
  return sorted(_TASKS)


def get_auxiliary_task(name):
  return _TASKS[name]


def _task_of(key):
  """The task that owns parameter `key`, or None."""
  for task in _TASKS.values():
    if key in task.defaults:
      return task
  return None


def auxiliary_task_modules(params):
  """Modules of the tasks that `params` switch on (recorded in run.json)."""
  return sorted({task.module for task in _TASKS.values()
                 if task.enabled(dict(task.defaults, **{
                     k: v for k, v in params.items() if k in task.defaults}))})


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
    if key not in params and _task_of(key) is None:
      raise KeyError("experiment %r has no parameter %r; it has: %s (and the "
                     "plug-in tasks' parameters: %s)"
                     % (name, key, ", ".join(sorted(params)),
                        ", ".join(sorted(k for t in _TASKS.values()
                                         for k in t.defaults)) or "none"))
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
  known.update({k: v for k, v in params.items()
                if k in defaults or _task_of(k) is not None})
  return known, sorted(set(params) - set(known))


def build_model(name, params, data):
  """Builds experiment `name`, then attaches the plug-in tasks `params` enable.

  Parameters of a task are taken from `params` (defaults for the rest);
  the experiment's builder sees only its own parameters.
  """
  experiment = get_experiment(name)
  own = {k: v for k, v in params.items()
         if k in experiment.defaults or _task_of(k) is None}
  model = experiment.builder(own, data)
  for task in _TASKS.values():
    task_params = dict(task.defaults)
    task_params.update({k: v for k, v in params.items() if k in task.defaults})
    if task.enabled(task_params):
      task.attach(model, task_params, data)
  return model

