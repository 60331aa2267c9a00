"""The registry: every registered parameter says what it means (`--describe`)."""

import pytest

from dcg_tf import configs
from dcg_tf.models import registry

configs.import_all()


@pytest.mark.parametrize("name", registry.list_experiments())
def test_every_parameter_has_a_one_line_meaning(name):
  rows = registry.describe(name)
  assert [key for key, _, _ in rows] == sorted(registry.get_experiment(name).defaults)
  missing = [key for key, _, meaning in rows if not meaning.strip()]
  assert not missing, "%s: no meaning for %s (add them to the config module's " \
      "help dict)" % (name, missing)
  assert all("\n" not in meaning for _, _, meaning in rows)


def test_describe_gives_the_registered_default_and_meaning():
  rows = {key: (default, meaning) for key, default, meaning in
          registry.describe("sasrec")}
  # sasrec overrides two_tower's dropout 0.0 with 0.2 (dcg_tf/configs/two_tower.py).
  assert rows["dropout"] == (0.2, "dropout rate in the towers")
  assert rows["user_encoder"][0] == "sasrec"
