"""Losses on embeddings, named after where their negatives come from."""

from dcg_tf.losses.in_batch_softmax import in_batch_softmax  # noqa: F401
from dcg_tf.losses.negative_sampling import negative_sampling_bce  # noqa: F401
from dcg_tf.losses.sampled_softmax import sampled_softmax  # noqa: F401
from dcg_tf.losses.ipw import ipw  # noqa: F401
from dcg_tf.losses.queue_contrastive import queue_contrastive  # noqa: F401
