"""dcg_tf: Deep Candidate Generation for TensorFlow.

Importing dcg_tf selects Keras 2 (``tf_keras``) before TensorFlow resolves
``tf.keras``; see ``dcg_tf/_keras.py``.
"""

from dcg_tf._keras import keras  # noqa: F401  (must run first)

__version__ = "0.1.0"


def __getattr__(name):
  # Lazy so that `import dcg_tf` stays cheap and data-only users need no Faiss.
  if name == "Retriever":
    from dcg_tf.serving.retriever import Retriever  # pylint: disable=g-import-not-at-top
    return Retriever
  raise AttributeError("module 'dcg_tf' has no attribute %r" % name)
