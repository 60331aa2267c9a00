"""docs/serving.md tells the truth about the exported towers.

The request bodies of docs/serving.md (its ```json blocks, parsed from the
Markdown) are fed, in a process that never imports dcg_tf, to the serving
signatures of towers exported on tiny synthetic data whose raw ids are the
ones the README's quick start produces: the outputs must have the names,
dtypes and shapes the doc's tables give. `saved_model_cli show --all` (when
the venv has it) must list the documented signatures and inputs.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dcg_tf._keras import keras
from dcg_tf.data import synthetic
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.data.loaders import LOADERS
from dcg_tf.data.preprocess import PreprocessConfig, preprocess
from dcg_tf.layers.embeddings.item_embedding import ItemEmbedding
from dcg_tf.serving.export import export_towers
from dcg_tf.towers.item_tower import ItemTower
from dcg_tf.towers.mean_pooling_user_tower import MeanPoolingUserTower
from dcg_tf.towers.multi_clrec_user_tower import MultiCLRecUserTower

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "serving.md"
DIM, INTERESTS, MAX_LEN = 8, 2, 5
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.S | re.M)

# Runs in a fresh interpreter that must never import dcg_tf (nor tf_keras):
# each body is given to the signature it names, with the dtypes the signature
# declares (as TensorFlow Serving converts JSON).
_PLAIN_TF_SCRIPT = r"""
import json, sys
import tensorflow as tf
args = json.loads(sys.argv[1])
report = {}
for tower, path in args["models"].items():
  model = tf.saved_model.load(path)
  for number, body in enumerate(args["bodies"]):
    name = body.get("signature_name", "serving_default")
    if name not in model.signatures:
      continue
    signature = model.signatures[name]
    specs = signature.structured_input_signature[1]
    if set(specs) != set(body["inputs"]):
      continue
    outputs = signature(**{name: tf.constant(value, specs[name].dtype)
                           for name, value in body["inputs"].items()})
    report["%s/%d" % (tower, number)] = {
        name: [t.dtype.name, t.shape.as_list(), t.numpy().tolist()]
        for name, t in outputs.items()}
report["leaked"] = sorted(m for m in sys.modules
                          if m.split(".")[0] in ("dcg_tf", "tf_keras"))
print(json.dumps(report))
"""


def doc_bodies():
  return [json.loads(block) for block in JSON_BLOCK.findall(DOC.read_text())]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  """Mean-pooling and multi-interest towers exported on synthetic data."""
  work = tmp_path_factory.mktemp("serving_doc")
  events = synthetic.generate(3000, seed=0)
  files = synthetic.write_amazon_2014(events, str(work / "raw"))
  preprocess(LOADERS["amazon"](files), str(work / "data"),
             PreprocessConfig(min_user_interactions=5, min_item_interactions=5))
  data = ProcessedDataset.load(str(work / "data"))
  keras.utils.set_random_seed(0)
  embedding = ItemEmbedding(num_items=data.num_items, dim=DIM)
  item_tower = ItemTower(embedding, l2_normalize=True)
  towers = {"mean": MeanPoolingUserTower(embedding, l2_normalize=True)}
  category = data.item_features["category"].astype(np.int64)
  towers["multi"] = MultiCLRecUserTower(
      embedding, category, num_categories=int(category.max()), output_dim=DIM,
      num_intentions=4, num_serving_interests=INTERESTS)
  dirs = {}
  for kind, user_tower in towers.items():
    dirs[kind] = str(work / kind)
    export_towers(user_tower, item_tower, data, dirs[kind], max_len=MAX_LEN)
  return dirs, data


@pytest.fixture(scope="module")
def served(exports):
  dirs, _ = exports
  models = {"mean_user": dirs["mean"] + "/user_tower",
            "multi_user": dirs["multi"] + "/user_tower",
            "item": dirs["mean"] + "/item_tower"}
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run(
      [sys.executable, "-c", _PLAIN_TF_SCRIPT,
       json.dumps({"models": models, "bodies": doc_bodies()})],
      capture_output=True, text=True, env=env, timeout=300, check=False,
      cwd=str(pathlib.Path(dirs["mean"]).parent))
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report.pop("leaked") == []
  return report


def test_the_doc_has_the_three_requests():
  bodies = doc_bodies()
  assert [(b["signature_name"], sorted(b["inputs"])) for b in bodies] == [
      ("serving_default", ["history"]),
      ("serve_with_context", ["history", "history_timestamp", "query_timestamp",
                              "user_id"]),
      ("serving_default", ["item_id"])]


def test_the_doc_ids_are_those_of_the_quick_start_data(exports):
  # The README's generate_synthetic data uses the same id scheme.
  _, data = exports
  items, users = set(data.vocab("item")), set(data.vocab("user"))
  for body in doc_bodies():
    inputs = body["inputs"]
    for item in sum(inputs.get("history", []), []) + inputs.get("item_id", [])[:1]:
      assert item == "" or item in items, item
    for user in inputs.get("user_id", []):
      assert user == "" or user in users, user


def test_user_requests_give_the_documented_outputs(served):
  bodies = doc_bodies()
  for number in (0, 1):
    batch = len(bodies[number]["inputs"]["history"])
    mean = served["mean_user/%d" % number]
    assert {k: v[:2] for k, v in mean.items()} == {
        "embedding": ["float32", [batch, DIM]]}
    # l2-normalised tower: unit vectors (a padded, short history included).
    norms = np.linalg.norm(np.array(mean["embedding"][2]), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    multi = served["multi_user/%d" % number]
    assert {k: v[:2] for k, v in multi.items()} == {
        "embeddings": ["float32", [batch, INTERESTS, DIM]],
        "mask": ["bool", [batch, INTERESTS]]}


def test_item_request_gives_the_documented_outputs(served):
  item = served["item/2"]
  assert {k: v[:2] for k, v in item.items()} == {
      "embedding": ["float32", [2, DIM]], "known": ["bool", [2]]}
  assert item["known"][2] == [True, False]          # "no-such-item" is unknown
  assert item["embedding"][2][1] == [0.0] * DIM     # ... and embeds to zeros
  assert abs(np.linalg.norm(item["embedding"][2][0]) - 1.0) < 1e-5


def test_saved_model_cli_lists_the_documented_signatures(exports):
  cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
  if cli is None:
    pytest.skip("saved_model_cli is not in this venv")
  dirs, _ = exports
  result = subprocess.run([cli, "show", "--dir", dirs["multi"] + "/user_tower", "--all"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  text = result.stdout
  for signature in ("serving_default", "serve_with_context"):
    assert "signature_def['%s']" % signature in text
  for name, dtype, shape in [("history", "DT_STRING", "(-1, -1)"),
                             ("history_timestamp", "DT_INT64", "(-1, -1)"),
                             ("query_timestamp", "DT_INT64", "(-1)"),
                             ("user_id", "DT_STRING", "(-1)"),
                             ("embeddings", "DT_FLOAT", "(-1, %d, %d)" % (INTERESTS, DIM)),
                             ("mask", "DT_BOOL", "(-1, %d)" % INTERESTS)]:
    pattern = (r"\['%s'\] tensor_info:\s+dtype: %s\s+shape: %s"
               % (name, dtype, re.escape(shape)))
    assert re.search(pattern, text), (name, text[:3000])
