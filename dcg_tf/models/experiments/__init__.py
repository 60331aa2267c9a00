"""Registered experiments; importing a module registers its builders."""

from dcg_tf.models.experiments import two_tower  # noqa: F401
from dcg_tf.models.experiments import clrec  # noqa: F401
from dcg_tf.models.experiments import multi_clrec  # noqa: F401
