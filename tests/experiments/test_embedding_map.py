"""experiments/embedding_map.py at tiny size: the sample, the NMI, the PNG.

The binary runs as a subprocess on a 3-step two_tower run; the references
are the fixture's ground truth (category of item i = 1 + (i - 1) % 4) and an
NMI written out below from the contingency table with plain loops.
"""

import json
import math

import numpy as np

from tests.binaries import run_module
from tests.data import fixtures


def _nmi_reference(a, b):
  """I / ((H(a) + H(b)) / 2) in nats, by counting."""
  n = len(a)
  count_a, count_b, joint = {}, {}, {}
  for x, y in zip(a, b):
    count_a[x] = count_a.get(x, 0) + 1
    count_b[y] = count_b.get(y, 0) + 1
    joint[x, y] = joint.get((x, y), 0) + 1
  h_a = -sum(c / n * math.log(c / n) for c in count_a.values())
  h_b = -sum(c / n * math.log(c / n) for c in count_b.values())
  mutual = sum(c / n * math.log(c * n / (count_a[x] * count_b[y]))
               for (x, y), c in joint.items())
  return mutual / ((h_a + h_b) / 2)


def test_embedding_map_samples_groups_and_reports_nmi(tmp_path):
  data_dir = fixtures.write_tiny_dataset(str(tmp_path / "data"), num_users=30,
                                         num_items=40, seed=3)
  model_dir = str(tmp_path / "model")
  run_module("experiments.train", "--model=two_tower", "--data_dir=" + data_dir,
             "--model_dir=" + model_dir, "--steps=3", "--batch_size=16",
             "--max_len=20", "--progress=false")
  output, png = str(tmp_path / "map.json"), str(tmp_path / "map.png")
  stdout = run_module("experiments.embedding_map",
                      "--models=a=%s,b=%s" % (model_dir, model_dir),
                      "--data_dir=" + data_dir, "--field=category",
                      "--num_groups=3", "--per_group=5", "--perplexity=4",
                      "--iterations=100", "--output=" + output, "--png=" + png)
  with open(output) as f:
    report = json.load(f)
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "| a |" in stdout and "| b |" in stdout

  # 40 items, 4 categories of 10: ties go to the smaller value, so 1, 2, 3.
  category = fixtures.tiny_arrays(30, 40, seed=3)["category"]
  items, groups = report["items"], report["groups"]
  assert groups == [1] * 5 + [2] * 5 + [3] * 5
  assert len(set(items)) == 15
  assert [int(category[i]) for i in items] == groups
  assert report["group_names"] == {"1": "cat1", "2": "cat2", "3": "cat3"}

  a, b = report["models"]["a"], report["models"]["b"]
  assert a == dict(b, model_dir=a["model_dir"])   # same run, same seed
  assert a["experiment"] == "two_tower"
  assert len(a["clusters"]) == 15 and set(a["clusters"]) <= {0, 1, 2}
  assert np.asarray(a["tsne"]).shape == (15, 2)
  assert abs(a["nmi"] - _nmi_reference(a["clusters"], groups)) < 1e-9
