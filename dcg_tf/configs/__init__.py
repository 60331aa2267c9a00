"""Registered experiments: one module per paper turns parameters into a model.

Importing a module of this package registers its builders with
`dcg_tf.models.registry` (a leaf module that imports no paper). Binaries that
list or build any experiment call `import_all()`; restoring a trained model
imports only the module recorded in its `run.json`
(`dcg_tf.training.checkpoint.load_trained_model`).

  >>> from dcg_tf import configs
  >>> from dcg_tf.models import registry
  >>> configs.import_all()
  >>> model = registry.build_model("two_tower", registry.resolve_params("two_tower"), data)
"""

import importlib
import pkgutil


def import_all():
  """Imports every experiment module of this package (registering them)."""
  for module in pkgutil.iter_modules(__path__):
    importlib.import_module(__name__ + "." + module.name)
