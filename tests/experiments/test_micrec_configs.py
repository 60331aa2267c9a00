"""experiments/configs/micrec/*.cfg: the rows of MicRec's Tables 2 and 4 and
Figure 3 share one budget, and each builds the model its row names."""

import ast
import os
import re

import numpy as np
import pytest

from dcg_tf import configs
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.models import registry
from dcg_tf.models.baselines import SampledSoftmaxModel
from dcg_tf.towers.ican_user_tower import ICANUserTower
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from dcg_tf.towers.self_attention_user_tower import SelfAttentionUserTower
from tests.data.fixtures import write_tiny_dataset

configs.import_all()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOLDER = os.path.join(ROOT, "experiments", "configs", "micrec")

# Row -> (user tower, item CL tasks, lambdas): what the paper's row means.
ROWS = {
    "ican": (ICANUserTower, (), ()),
    "micrec_fea": (ICANUserTower, ("fea",), (1.0,)),
    "micrec_fea_sess": (ICANUserTower, ("fea", "sess"), (1.0, 0.1)),
    "micrec": (ICANUserTower, ("fea", "sem", "sess"), (1.0, 0.1, 0.1)),
    "micrec_no_fea": (ICANUserTower, ("sem", "sess"), (0.1, 0.1)),
    "micrec_no_sess": (ICANUserTower, ("fea", "sem"), (1.0, 0.1)),
    "youtube_dnn": (MeanPoolingUserTower, (), ()),
    "youtube_dnn_fea": (MeanPoolingUserTower, ("fea",), (1.0,)),
    "youtube_dnn_fea_sess": (MeanPoolingUserTower, ("fea", "sess"), (1.0, 0.1)),
    "youtube_dnn_micrec": (MeanPoolingUserTower, ("fea", "sem", "sess"),
                           (1.0, 0.1, 0.1)),
    "sasrec": (SelfAttentionUserTower, (), ()),
    "sasrec_fea": (SelfAttentionUserTower, ("fea",), (1.0,)),
    "sasrec_fea_sess": (SelfAttentionUserTower, ("fea", "sess"), (1.0, 0.1)),
    "sasrec_micrec": (SelfAttentionUserTower, ("fea", "sem", "sess"),
                      (1.0, 0.1, 0.1)),
}
# Flags of the shared budget (every row, same values).
BUDGET = ("--batch_size", "--max_len", "--all_prefixes", "--epochs",
          "--learning_rate", "--optimizer", "--checkpoint_every",
          "--param=embedding_dim", "--param=hidden_units",
          "--param=temperature", "--param=queue_size")


def _lines(name):
  with open(os.path.join(FOLDER, name + ".cfg")) as f:
    return [line.strip() for line in f if line.strip()
            and not line.startswith("#")]


def _key(line):
  if line.startswith("--param="):
    return "--param=" + line[len("--param="):].split("=", 1)[0]
  return line.split("=", 1)[0]


def _value(text):
  if text.lower() in ("true", "false", "none"):
    return {"true": True, "false": False, "none": None}[text.lower()]
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _train_flags():
  with open(os.path.join(ROOT, "experiments", "train.py")) as f:
    return set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', f.read()))


def test_every_row_has_a_file_and_every_file_a_row():
  files = {n[:-len(".cfg")] for n in os.listdir(FOLDER) if n.endswith(".cfg")}
  assert files == set(ROWS)


def test_one_budget_shared_by_every_row():
  budgets = {}
  for name in ROWS:
    lines = _lines(name)
    budget = {_key(l): l for l in lines if _key(l) in BUDGET}
    assert set(budget) == set(BUDGET), name
    budgets[name] = budget
    flags = _train_flags()
    for line in lines:
      assert line.startswith("--") and line[2:].split("=")[0] in flags, (name, line)
  first = budgets["ican"]
  assert all(b == first for b in budgets.values())
  assert first["--max_len"] == "--max_len=20"         # the 20 latest behaviours
  assert first["--param=queue_size"] == "--param=queue_size=512"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  path = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), num_users=12,
                            num_items=15)
  return ProcessedDataset.load(path)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_builds_its_model(name, data):
  lines = _lines(name)
  model_name = [l.split("=", 1)[1] for l in lines if l.startswith("--model=")]
  assert len(model_name) == 1, name
  params = dict(l[len("--param="):].split("=", 1) for l in lines
                if l.startswith("--param="))
  params = {k: _value(v) for k, v in params.items()}
  params["max_len"] = 20   # what the trainer's --max_len sets
  model = registry.build_model(model_name[0], registry.resolve_params(
      model_name[0], params), data)
  tower, tasks, weights = ROWS[name]
  assert type(model.user_tower) is tower   # pylint: disable=unidiomatic-typecheck
  # Eq. 7 for every row: 512 uniformly drawn negatives.
  assert isinstance(model, SampledSoftmaxModel)
  assert model.num_negatives == 512
  probability = model.sampler.probability(np.arange(1, 16)).numpy()
  np.testing.assert_allclose(probability, np.full(15, 1 / 15), rtol=1e-6)
  task = getattr(model, "item_contrastive", None)
  if not tasks:
    assert task is None
  else:
    assert task.tasks == tasks
    assert [task.weights_by_task[t] for t in tasks] == list(weights)
