"""tf.distribute: R replicas x B/R rows train as 1 device x B rows.

The reference is the one-device trainer (the code path every other test
pins): with negatives gathered across replicas, the losses of each step and
the weights (optimizer slots included) after a few steps must be the
one-device ones within float tolerance (the summed gradients differ only in
the order of their float additions). Per-replica negatives must change the
loss, and their count per row is worked out by hand. Each run is a
subprocess (`tests/training/strategy_run.py`, or `experiments.train` itself
for parameter servers): logical devices and TF_CONFIG must be set before
TensorFlow starts. They run in `make test`: CI checks the strategies on
every change (times in docs/scale.md, "Tests").
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.binaries import REPO
from tests.data.fixtures import write_tiny_dataset

RUNNER = os.path.join(REPO, "tests", "training", "strategy_run.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return write_tiny_dataset(str(tmp_path_factory.mktemp("tiny") / "data"),
                            num_users=40, num_items=30)


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1",
             PYTHONPATH=REPO, **extra)
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def _runner_args(strategy, data_dir, model_dir, out, experiment, params, **flags):
  args = [sys.executable, RUNNER, "--strategy", strategy, "--data_dir", data_dir,
          "--model_dir", model_dir, "--out", out, "--experiment", experiment,
          "--params", json.dumps(params)]
  for key, value in flags.items():
    args += ["--" + key, value if isinstance(value, str) else json.dumps(value)]
  return args


def _run(*args, **flags):
  proc = subprocess.run(_runner_args(*args, **flags), cwd=REPO, env=_env(),
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]


def _load(out):
  with open(out + ".json") as f:
    history = json.load(f)["history"]
  return np.load(out + ".npz"), history


def _assert_same_run(out_a, out_b, atol=2e-5):
  weights_a, history_a = _load(out_a)
  weights_b, history_b = _load(out_b)
  steps_b = {step["step"]: step for step in history_b}
  assert history_a and all(step["step"] in steps_b for step in history_a)
  for step_a in history_a:
    step_b = steps_b[step_a["step"]]
    assert step_a["loss"] == pytest.approx(step_b["loss"], rel=1e-5), step_a
    assert step_a["negatives_per_row"] == step_b["negatives_per_row"]
  assert len(weights_a.files) == len(weights_b.files)
  for key_a, key_b in zip(sorted(weights_a.files), sorted(weights_b.files)):
    assert key_a.split(":")[0] == key_b.split(":")[0]
    np.testing.assert_allclose(weights_a[key_a], weights_b[key_b], rtol=1e-4,
                               atol=atol, err_msg=key_a)


def test_mirrored_two_tower_equals_one_device_and_replica_negatives_differ(
    data_dir, tmp_path):
  # two_tower: in-batch softmax with log-Q and accidental hits, LazyAdam
  # (IndexedSlices gradients of the embedding tables, summed across replicas).
  out = str(tmp_path / "mirrored")
  _run("mirrored", data_dir, str(tmp_path / "m"), out, "two_tower",
       {"embedding_dim": 8}, reference_dir=str(tmp_path / "one"))
  _assert_same_run(out, out + "_one")
  # Per-replica negatives: 2 replicas x 4 rows, so a row sees at most the 3
  # other rows of its replica (global: up to 7), minus accidental hits.
  local = str(tmp_path / "local")
  _run("mirrored", data_dir, str(tmp_path / "l"), local, "two_tower",
       {"embedding_dim": 8}, negatives="replica")
  _, history = _load(local)
  _, global_history = _load(out)
  assert all(step["negatives_per_row"] <= 3.0 for step in history)
  assert max(step["negatives_per_row"] for step in global_history) > 3.0
  assert history[0]["loss"] != pytest.approx(global_history[0]["loss"], rel=1e-3)


# CLRec with a queue of 16 slots (global batch 8): it wraps after 2 steps, so
# 4 steps check that it holds the global batches in order on every replica.
# epsilon=1e-3: the attention's score bias has a zero gradient up to float
# noise, which Adam with epsilon=1e-7 would turn into steps of lr size.
CLREC_RAW = {"embedding_dim": 8, "queue_size": 16}          # raw ids, re-encoded
# Cached keys from a momentum encoder (MoCo): the queue stores the key
# encoder's embeddings of the global batch, and the key encoder's lazy
# catch-up and Eq. 2 update must be the same on every replica.
CLREC_MOMENTUM = dict(CLREC_RAW, queue="cached", momentum=0.9)
CLREC_FLAGS = {"steps": 4, "optimizer_args": {"epsilon": 1e-3}}


@pytest.mark.parametrize("params", [CLREC_RAW, CLREC_MOMENTUM])
def test_mirrored_clrec_queue_and_momentum_equal_one_device(data_dir, tmp_path,
                                                           params):
  out = str(tmp_path / "mirrored")
  _run("mirrored", data_dir, str(tmp_path / "m"), out, "clrec", params,
       reference_dir=str(tmp_path / "one"), **CLREC_FLAGS)
  _assert_same_run(out, out + "_one")


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _run_workers(data_dir, model_dir, out, experiment="two_tower", params=None,
                 **flags):
  """Two MultiWorkerMirroredStrategy workers on 127.0.0.1, batch 8 = 2 x 4.

  `flags` are the runner's (`steps`, `optimizer_args`, ...), as for `_run`.
  """
  ports = _free_ports(2)
  cluster = {"worker": ["127.0.0.1:%d" % p for p in ports]}
  procs = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster,
                            "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        _runner_args("multi_worker", data_dir, model_dir, out, experiment,
                     params or {"embedding_dim": 8}, **flags),
        cwd=REPO, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  errors = []
  for proc in procs:
    try:
      _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      proc.kill()
      _, err = proc.communicate()
    if proc.returncode != 0:
      errors.append(err[-3000:])
  assert not errors, "\n\n".join(errors)


def test_multi_worker_two_tower_equals_one_device_and_resumes(data_dir, tmp_path):
  one = str(tmp_path / "one")
  _run("none", data_dir, str(tmp_path / "one_dir"), one, "two_tower",
       {"embedding_dim": 8}, steps=4)
  # 2 steps, then the same command again with --steps=4: a resumed run.
  model_dir = str(tmp_path / "workers")
  out = str(tmp_path / "workers_out")
  _run_workers(data_dir, model_dir, out, steps=2)
  saved = sorted(os.listdir(os.path.join(model_dir, "checkpoints")))
  _run_workers(data_dir, model_dir, out, steps=4)
  _assert_same_run(out, one)
  # Only the chief wrote checkpoints: one checkpoint per save, no worker folder.
  assert saved == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
  with open(out + ".json") as f:
    history = json.load(f)["history"]
  assert [step["step"] for step in history] == [3, 4]     # resumed at step 2


@pytest.mark.parametrize("params", [CLREC_RAW, CLREC_MOMENTUM])
def test_multi_worker_clrec_queue_and_momentum_encoder_equal_one_device(
    data_dir, tmp_path, params):
  # The "clrec (queue)" (raw: the queue's ids re-encoded by the online
  # tower, its rows' sparse gradients summed over the workers) and "a model
  # with a momentum encoder" (cached: the key encoder's embeddings of the
  # global batch enqueued once per step in worker order, the key encoder
  # moved by Eq. 2 after the summed step). The queue wraps at step 3, so a
  # drift changes the losses of steps 3-4 and the queue, key-encoder and
  # slot variables compared here. The chief worker also runs the one-device
  # reference (after its MultiWorkerMirrored run, in its own process).
  out = str(tmp_path / "workers_out")
  _run_workers(data_dir, str(tmp_path / "workers"), out, "clrec", params,
               reference_dir=str(tmp_path / "one"), **CLREC_FLAGS)
  _assert_same_run(out, out + "_one")


# A cluster of 1 worker and 2 parameter servers in one process, each task's
# server started by the function the binary's "worker" and "ps" tasks call.
_SERVE = ("import json, sys\n"
          "from dcg_tf.training import parameter_server\n"
          "parameter_server.serve(json.loads(sys.argv[1]),"
          " [('worker', 0), ('ps', 0), ('ps', 1)])")
_TRAIN_FLAGS = ["--model=two_tower", "--embedding_dim=8", "--batch_size=8",
                "--max_len=6", "--seed=1", "--all_prefixes",
                "--learning_rate=0.05", "--progress=false"]


def test_parameter_server_binary_sharded_table_equals_one_device_and_resumes(
    data_dir, tmp_path):
  # pylint: disable=g-import-not-at-top,protected-access
  import tensorflow as tf
  from dcg_tf.data.dataset import ProcessedDataset
  from dcg_tf.training import experiment
  from dcg_tf.training import trainer as trainer_lib
  # The one-device reference, in this process, with the binary's settings.
  # A sharded table is initialised shard by shard (other random values than
  # one table), so the parameter-server run starts from the reference's step
  # 0 checkpoint, copied into its model_dir: its first start resumes it.
  reference = experiment.build_trainer(
      "two_tower", ProcessedDataset.load(data_dir), str(tmp_path / "one"),
      params={"embedding_dim": 8}, learning_rate=0.05,
      config=trainer_lib.TrainerConfig(batch_size=8, max_len=6, steps=4,
                                       seed=1, all_prefixes=True,
                                       progress=False, log_every=1))
  reference._build(reference._first_batch())
  reference.manager.save(checkpoint_number=0)
  model_dir = tmp_path / "ps"
  shutil.copytree(tmp_path / "one" / "checkpoints", model_dir / "checkpoints")
  reference.train()

  chief, worker, ps0, ps1 = _free_ports(4)
  cluster = {"chief": ["127.0.0.1:%d" % chief],
             "worker": ["127.0.0.1:%d" % worker],
             "ps": ["127.0.0.1:%d" % ps0, "127.0.0.1:%d" % ps1]}
  env = _env(TF_CONFIG=json.dumps({"cluster": cluster,
                                   "task": {"type": "chief", "index": 0}}))
  servers = subprocess.Popen([sys.executable, "-c", _SERVE, json.dumps(cluster)],
                             cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    runs = []
    for steps in (2, 4):   # 2 steps, then the same command with --steps=4
      runs.append(subprocess.run(
          [sys.executable, "-m", "experiments.train", "--strategy",
           "parameter_server", "--ps_min_rows=31", "--data_dir", data_dir,
           "--model_dir", str(model_dir), "--steps=%d" % steps] + _TRAIN_FLAGS,
          cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
          check=False))
      assert runs[-1].returncode == 0, runs[-1].stderr[-4000:]
      if steps == 2:
        saved = sorted(os.listdir(model_dir / "checkpoints"))
  finally:
    servers.kill()
    servers.wait()
  # The item id table (31 rows, the only variable with as many) is cut into
  # 2 shards, one on each server.
  shards = re.search(r"table shards: (.*)", runs[0].stderr).group(1)
  placed = re.findall(r"(\S+)/part_(\d):0 on /job:ps/replica:0/task:(\d)", shards)
  assert {name for name, _, _ in placed} == {
      "user_tower/item_embedding/item_id_embedding/embeddings"}, shards
  assert sorted(part for _, part, _ in placed) == ["0", "1"], shards
  assert sorted(task for _, _, task in placed) == ["0", "1"], shards
  # The chief wrote the step 2 checkpoint (its data in one file per device:
  # the coordinator's and each server's).
  assert {name.split(".")[0] for name in saved} == {"checkpoint", "ckpt-0",
                                                    "ckpt-2"}, saved
  assert "Resuming from %s" % (model_dir / "checkpoints" / "ckpt-2") in runs[1].stderr
  loss = float(re.search(r"done: step 4, .*\bloss=([-0-9.]+)", runs[1].stdout).group(1))
  assert loss == pytest.approx(reference.history[-1]["loss"], abs=1e-4)
  with open(model_dir / "run.json") as f:
    assert json.load(f)["trainer"]["strategy"] == "ParameterServerStrategyV2"
  assert "--strategy=parameter_server" in (model_dir / "flags.txt").read_text()
  # Weights, LazyAdam slots and counters after 4 steps (the table saved whole).
  one = tf.train.load_checkpoint(str(tmp_path / "one" / "checkpoints" / "ckpt-4"))
  sharded = tf.train.load_checkpoint(str(model_dir / "checkpoints" / "ckpt-4"))
  # (save_counter counts this process's saves: 2 here, 3 over the two starts.)
  other = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"}
  shapes = one.get_variable_to_shape_map()
  keys = set(shapes) - other
  assert keys == set(sharded.get_variable_to_shape_map()) - other
  # The id table and its two LazyAdam slots (m, v), [31, 8] each.
  assert sum(shapes[key] == [31, 8] for key in keys) == 3
  for key in sorted(keys):
    np.testing.assert_allclose(sharded.get_tensor(key), one.get_tensor(key),
                               rtol=1e-5, atol=1e-6, err_msg=key)
