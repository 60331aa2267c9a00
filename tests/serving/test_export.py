"""export_towers: SavedModels on raw ids reproduce the towers outside dcg_tf."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.serving import export as export_lib
from tests.binaries import run_module

MAX_LEN = 6  # conftest.MAX_LEN

# Raw histories: known ids, unknown ids ("nope", "zzz"), '' padding, a history
# longer than MAX_LEN (the 6 most recent known items are kept) and empty ones.
HISTORIES = [
    ["i1", "i5", "i7"],
    ["i3", "nope", "", "i2", "i9", "i10", "i11", "i12", "i13", "i14"],
    ["zzz"],
    [],
]
TIMESTAMPS = [
    [100, 200, 300],
    [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
    [5],
    [],
]
QUERY_TIMESTAMPS = [400, 1000, 50, 7]
USERS = ["u1", "unknown-user", "u3", ""]
ITEM_IDS = ["i1", "i40", "not-an-item", "", "i7"]

# Runs in a fresh interpreter that must never import dcg_tf (nor tf_keras).
_PLAIN_TF_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
args = json.loads(sys.argv[1])
width = max(len(h) for h in args["histories"])
pad = lambda rows, v: [r + [v] * (width - len(r)) for r in rows]
history = tf.constant(pad(args["histories"], ""), tf.string)
ts = tf.constant(pad(args["timestamps"], 0), tf.int64)
out = {}
mean_user = tf.saved_model.load(args["mean"] + "/user_tower")
out["mean_user"] = mean_user.signatures["serving_default"](history=history)["embedding"]
multi_user = tf.saved_model.load(args["multi"] + "/user_tower")
res = multi_user.signatures["serve_with_context"](
    history=history, history_timestamp=ts,
    query_timestamp=tf.constant(args["query_timestamps"], tf.int64),
    user_id=tf.constant(args["users"]))
out["multi_ctx_embeddings"], out["multi_ctx_mask"] = res["embeddings"], res["mask"]
res = multi_user.signatures["serving_default"](history=history)
out["multi_embeddings"], out["multi_mask"] = res["embeddings"], res["mask"]
item = tf.saved_model.load(args["mean"] + "/item_tower")
res = item.signatures["serving_default"](item_id=tf.constant(args["item_ids"]))
out["item_embedding"], out["item_known"] = res["embedding"], res["known"]
vocab = open(args["mean"] + "/item_ids.txt").read().splitlines()
out["all_items"] = item.signatures["serving_default"](
    item_id=tf.constant(vocab))["embedding"]
np.savez(args["output"], **{k: v.numpy() for k, v in out.items()})
# Inputs of the wrong rank or shape: the error each gives.
errors = {}
bad_calls = {
    "history_1d": lambda: mean_user.signatures["serving_default"](
        history=tf.constant(["i1", "i5"])),
    "timestamps_short": lambda: multi_user.signatures["serve_with_context"](
        history=history, history_timestamp=ts[:, :1],
        query_timestamp=tf.constant(args["query_timestamps"], tf.int64),
        user_id=tf.constant(args["users"])),
    "item_id_2d": lambda: item.signatures["serving_default"](
        item_id=tf.constant([args["item_ids"]])),
}
for name, call in bad_calls.items():
  try:
    call()
    errors[name] = None
  except tf.errors.InvalidArgumentError as e:
    errors[name] = e.message
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("dcg_tf", "tf_keras"))
print(json.dumps({"leaked": leaked, "errors": errors}))
"""


@pytest.fixture(scope="module")
def plain_tf_outputs(mean_export, multi_export, tmp_path_factory):
  output = str(tmp_path_factory.mktemp("plain") / "outputs.npz")
  args = {"mean": mean_export.export_dir, "multi": multi_export.export_dir, "histories": HISTORIES,
          "timestamps": TIMESTAMPS, "query_timestamps": QUERY_TIMESTAMPS,
          "users": USERS, "item_ids": ITEM_IDS, "output": output}
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run([sys.executable, "-c", _PLAIN_TF_SCRIPT, json.dumps(args)],
                          capture_output=True, text=True, env=env, timeout=300,
                          cwd=os.path.dirname(output), check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["leaked"] == []
  with np.load(output, allow_pickle=False) as f:
    return dict(f, errors=report["errors"])


def test_inputs_of_the_wrong_rank_are_named_in_the_error(plain_tf_outputs):
  """Plain TensorFlow calls with a 1-D history etc. get a readable message."""
  errors = plain_tf_outputs["errors"]
  assert ("history must be 2-D [batch, length]; got an input of shape] [2]"
          in errors["history_1d"]), errors["history_1d"]
  # 4 histories padded to width 10 (the longest); timestamps cut to width 1.
  assert ("history_timestamp must have shape] [4 10] [(the shape of history); "
          "got] [4 1]" in errors["timestamps_short"]), errors["timestamps_short"]
  assert ("item_id must be 1-D [batch]; got an input of shape] [1 5]"
          in errors["item_id_2d"]), errors["item_id_2d"]


def test_user_tower_savedmodel_matches_tower_on_raw_ids(
    plain_tf_outputs, mean_export, tiny_data, make_reference_batch):
  user_tower = mean_export.user_tower
  # Reference: the in-process tower on ids mapped by a Python dict.
  expected = user_tower(make_reference_batch(tiny_data, HISTORIES, MAX_LEN)).numpy()
  got = plain_tf_outputs["mean_user"]
  assert np.abs(got - expected).max() < 1e-5
  # Unknown ids are dropped, not embedded: history 0 + unknowns == history 0.
  assert not np.allclose(expected[0], expected[1])
  with_unknown = user_tower(make_reference_batch(
      tiny_data, [["zzz", "i1", "", "i5", "nope", "i7"]], MAX_LEN)).numpy()
  np.testing.assert_allclose(with_unknown[0], expected[0], atol=1e-6)


def test_multi_interest_savedmodel_uses_timestamps_and_user(
    plain_tf_outputs, multi_export, tiny_data, make_reference_batch):
  user_tower = multi_export.user_tower
  batch = make_reference_batch(tiny_data, HISTORIES, MAX_LEN, TIMESTAMPS,
                               QUERY_TIMESTAMPS, USERS)
  vectors, mask = user_tower(batch)
  assert plain_tf_outputs["multi_ctx_embeddings"].shape == (4, 2, 8)
  assert np.abs(plain_tf_outputs["multi_ctx_embeddings"] - vectors.numpy()).max() < 1e-5
  np.testing.assert_array_equal(plain_tf_outputs["multi_ctx_mask"], mask.numpy())
  # serving_default fills timestamps with 0: the tower on zero timestamps.
  vectors0, mask0 = user_tower(make_reference_batch(tiny_data, HISTORIES, MAX_LEN))
  assert np.abs(plain_tf_outputs["multi_embeddings"] - vectors0.numpy()).max() < 1e-5
  np.testing.assert_array_equal(plain_tf_outputs["multi_mask"], mask0.numpy())
  # The time gaps matter for this tower, so the context signature is not a no-op.
  assert np.abs(vectors.numpy()[0] - vectors0.numpy()[0]).max() > 1e-4


def test_item_tower_savedmodel_maps_raw_ids_and_unknowns(plain_tf_outputs,
                                                         mean_export):
  export_dir, item_tower = mean_export.export_dir, mean_export.item_tower
  # i1 -> 1, i40 -> 40, i7 -> 7 (line v-1 of vocab/item.txt is "i<v>").
  expected = item_tower(tf.constant([1, 40, 7], tf.int64)).numpy()
  got = plain_tf_outputs["item_embedding"]
  np.testing.assert_array_equal(plain_tf_outputs["item_known"],
                                [True, True, False, False, True])
  assert np.abs(got[[0, 1, 4]] - expected).max() < 1e-5
  np.testing.assert_array_equal(got[[2, 3]], np.zeros((2, 8)))
  # item_embeddings.npy row r = item r + 1 = the SavedModel on line r of item_ids.txt.
  matrix = np.load(os.path.join(export_dir, "item_embeddings.npy"), allow_pickle=False)
  assert np.abs(plain_tf_outputs["all_items"] - matrix).max() < 1e-5
  direct = item_tower(tf.range(1, 41, dtype=tf.int64)).numpy()
  assert np.abs(matrix - direct).max() < 1e-6


def test_export_files_and_json(mean_export, multi_export, tiny_data):
  export_dir = mean_export.export_dir
  with open(os.path.join(export_dir, "item_ids.txt")) as f:
    assert f.read().splitlines() == ["i%d" % i for i in range(1, 41)]
  with open(os.path.join(export_dir, "export.json")) as f:
    content = json.load(f)
  assert (content["num_items"], content["embedding_dim"], content["max_len"]) == (40, 8, 6)
  assert content["metric"] == "ip" and content["multi_interest"] is False
  assert content["dataset_fingerprint"] == tiny_data.fingerprint
  # The fingerprint, recomputed: sha256(npy bytes + canonical JSON of the dims).
  with open(os.path.join(export_dir, "item_embeddings.npy"), "rb") as f:
    digest = hashlib.sha256(f.read())
  digest.update(json.dumps({"dims": {"num_items": 40, "embedding_dim": 8},
                            "extra": None}, sort_keys=True).encode())
  assert content["export_fingerprint"] == digest.hexdigest()
  multi = export_lib.read_export(multi_export.export_dir)
  assert multi["metric"] == "cosine" and multi["multi_interest"] is True
  assert multi["num_interests"] == 2
  assert multi["export_fingerprint"] != content["export_fingerprint"]


def _saved_variables(path):
  return tf.train.list_variables(os.path.join(path, "variables", "variables"))


def test_training_only_queue_never_enters_the_export(mean_export):
  # mean_export comes from a RetrievalModel holding a FIFOQueue [37, 8].
  queue_shape = [37, 8]
  assert any(v.shape == queue_shape for v in mean_export.model.variables)
  for tower_dir, tower in (("user_tower", mean_export.user_tower),
                           ("item_tower", mean_export.item_tower)):
    saved = _saved_variables(os.path.join(mean_export.export_dir, tower_dir))
    names = [name for name, _ in saved
             if name.endswith(".ATTRIBUTES/VARIABLE_VALUE")]
    assert not [n for n in names if "queue" in n.lower() or "negatives" in n]
    assert [shape for _, shape in saved if list(shape) == queue_shape] == []
    # Exactly the tower's variables, with their values.
    assert len(names) == len({id(v) for v in tower.variables})
    values = sorted(float(np.sum(tf.train.load_variable(
        os.path.join(mean_export.export_dir, tower_dir, "variables", "variables"),
        name))) for name in names)
    expected = sorted(float(np.sum(v.numpy())) for v in tower.variables)
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_left_align_recent_matches_python_reference():
  rng = np.random.default_rng(0)
  ids = rng.integers(0, 4, size=(6, 9)) * rng.integers(0, 2, size=(6, 9))
  stamps = rng.integers(1, 1000, size=(6, 9))
  got_ids, got_stamps = export_lib.left_align_recent(
      tf.constant(ids, tf.int64), 4, tf.constant(stamps, tf.int64))
  for row in range(6):
    kept = [(i, t) for i, t in zip(ids[row], stamps[row]) if i > 0][-4:]
    pad = [0] * (4 - len(kept))
    assert got_ids.numpy()[row].tolist() == [i for i, _ in kept] + pad
    assert got_stamps.numpy()[row].tolist() == [t for _, t in kept] + pad


def test_bad_vocabularies_and_non_empty_export_dir_are_refused(
    mean_export, tiny_data):
  with pytest.raises(ValueError, match=r"'b' twice \(lines 2"):
    export_lib.vocabulary_table(["a", "b", "c", "b"], "item")
  with pytest.raises(ValueError, match="empty string at line 2"):
    export_lib.vocabulary_table(["a", ""], "item")
  with pytest.raises(FileExistsError, match="not empty"):
    export_lib.export_towers(mean_export.user_tower, mean_export.item_tower,
                             tiny_data, mean_export.export_dir, max_len=MAX_LEN)




@pytest.mark.slow
def test_export_binary_on_a_trained_model(tmp_path):
  from dcg_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  from tests.data import fixtures  # pylint: disable=g-import-not-at-top
  data_dir = fixtures.write_tiny_dataset(str(tmp_path / "data"), num_users=30,
                                         num_items=40, seed=2)
  model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data_dir,
              "--model_dir=" + model_dir, "--steps=3", "--batch_size=16",
              "--max_len=" + str(MAX_LEN), "--progress=false")
  stdout = run_module("experiments.export", "--model_dir=" + model_dir,
                       "--export_dir=" + export_dir)
  assert "Exported 40 items" in stdout
  model, data = checkpoint.load_trained_model(model_dir)
  content = export_lib.read_export(export_dir)
  assert content["max_len"] == MAX_LEN
  assert content["fingerprint_extra"]["experiment"] == "two_tower"
  assert content["dataset_fingerprint"] == data.fingerprint
  matrix = np.load(os.path.join(export_dir, "item_embeddings.npy"), allow_pickle=False)
  expected = model.item_tower(tf.range(1, 41, dtype=tf.int64)).numpy()
  assert np.abs(matrix - expected).max() < 1e-5
  user = tf.saved_model.load(os.path.join(export_dir, "user_tower"))
  got = user.signatures["serving_default"](
      history=tf.constant([["i4", "i9", "unknown", "i2"]]))["embedding"].numpy()
  history = tf.constant([[4, 9, 2] + [0] * (MAX_LEN - 3)], tf.int64)
  batch = {"history": history, "history_mask": history > 0,
           "history_timestamp": tf.zeros_like(history),
           "target_timestamp": tf.zeros([1], tf.int64), "user": tf.zeros([1], tf.int64)}
  assert np.abs(got - model.user_tower(batch).numpy()).max() < 1e-5
