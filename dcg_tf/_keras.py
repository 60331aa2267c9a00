"""Keras 2 selection for TF 2.21 + tensorflow-recommenders.

tensorflow-recommenders refuses Keras 3, so dcg_tf runs on Keras 2 (``tf_keras``).
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow first resolves ``tf.keras``.
This module sets it and fails loudly when another import already bound Keras 3.

Everything in dcg_tf imports Keras as ``from dcg_tf._keras import keras``.
"""

import os
import sys

_HELP = (
    "dcg_tf needs Keras 2 (the tf_keras package) because tensorflow-recommenders "
    "refuses Keras 3. In this process tf.keras is already Keras 3. Set "
    "TF_USE_LEGACY_KERAS=1 in the environment before starting Python (or import "
    "dcg_tf before tensorflow), and install tf-keras matching your TensorFlow minor "
    "version: pip install 'tf-keras==<tf major.minor>.*'."
)


def _select_keras():
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  if os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
    raise ImportError(_HELP + " (TF_USE_LEGACY_KERAS is set to %r.)"
                      % os.environ["TF_USE_LEGACY_KERAS"])
  tf_already_imported = "tensorflow" in sys.modules
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    import tf_keras  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "dcg_tf needs the tf_keras package (Keras 2): pip install "
        "'tf-keras==%s.*'" % ".".join(tf.__version__.split(".")[:2])) from e
  version = getattr(tf.keras, "__version__", "") or getattr(
      getattr(tf.keras, "version", lambda: "")(), "__str__", lambda: "")()
  if str(version).startswith("3"):
    raise ImportError(_HELP + (" (tensorflow was imported before dcg_tf.)"
                               if tf_already_imported else ""))
  return tf_keras


keras = _select_keras()
