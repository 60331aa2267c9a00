"""`python -m experiments.leaderboard`: runs, resumes, and renders mean ± std."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.binaries import run_module
from tests.data.fixtures import write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--extra_flag=--epochs=2", "--extra_flag=--batch_size=4",
        "--extra_flag=--max_len=6", "--extra_flag=--embedding_dim=8"]


def _board(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "experiments.leaderboard", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stderr


def test_leaderboard_runs_resumes_and_renders(tmp_path):
  data_dir = write_tiny_dataset(str(tmp_path / "data"), num_users=16, num_items=12)
  results, page = tmp_path / "results", tmp_path / "board.md"
  published = tmp_path / "published.json"
  published.write_text(json.dumps({"tiny": [
      {"model": "SASRec", "source": "somewhere", "HR@10": 0.0605}]}))
  args = ["--datasets=tiny=" + data_dir, "--models=two_tower,transition", "--seeds=0,1",
          "--work_dir=" + str(tmp_path / "runs"), "--results_dir=" + str(results),
          "--output=" + str(page), "--published=" + str(published)] + TINY
  log = _board(*args)
  assert "3 runs to do (0 done)" in log   # the transition baseline runs once
  records = [json.loads((results / "tiny" / "two_tower" / ("seed%d.json" % s)).read_text())
             for s in (0, 1)]
  for seed, record in enumerate(records):
    assert record["seed"] == seed and record["trainer"]["seed"] == seed
    assert record["epochs"] == 2 and 1 <= record["best_epoch"] <= 2
    assert record["num_users"] == 16
    clock = json.loads((tmp_path / "runs" / "tiny" / "two_tower" / ("seed%d" % seed)
                        / "train_seconds.json").read_text())
    assert record["train_seconds"] == round(clock["train_seconds"], 1) > 0
    # 12 items: the cut-offs above the catalog (20, 50, 200) are not defined.
    assert {"HR@10", "NDCG@10", "coverage@10"} <= set(record["metrics"])
    assert "HR@20" not in record["metrics"]
  text = page.read_text()
  hr = np.array([r["metrics"]["HR@10"] for r in records])
  cell = "%.4f ± %.4f (2)" % (hr.mean(), hr.std(ddof=1))
  row = [line for line in text.splitlines() if line.startswith("| two_tower |")]
  assert len(row) == 1 and cell in row[0], (cell, row)
  assert "*SASRec (published: somewhere)*" in text and "*0.0605*" in text
  # Finished runs are not run again; the page is rebuilt from the records.
  assert "0 runs to do (3 done)" in _board(*args)
  assert "| transition |" in text and "no training" in text
  assert "Against the first-order transition baseline" in text
  page.unlink()
  _board("--render_only", "--results_dir=" + str(results), "--output=" + str(page),
         "--published=" + str(published))
  assert cell in page.read_text()


def test_training_time_adds_up_over_resumed_invocations(tmp_path):
  # A run killed after 100 s and resumed reports 100 s + the resumed part.
  clock = tmp_path / "run" / "train_seconds.json"
  clock.parent.mkdir()
  clock.write_text(json.dumps({"train_seconds": 100.0}))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  probe = subprocess.run(
      [sys.executable, "-c",
       "import sys\n"
       "from experiments import leaderboard\n"
       "s = leaderboard._run(['json.tool', '--help'], 'probe', clock=sys.argv[1])\n"
       "print(s)", str(clock)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert probe.returncode == 0, probe.stderr[-2000:]
  total = float(probe.stdout.strip().splitlines()[-1])
  assert 100.0 < total < 160.0
  assert json.loads(clock.read_text())["train_seconds"] == total


def _record(model, seed, recall, valid_ndcg):
  return {"dataset": "d", "model": model, "seed": seed, "epochs": 2,
          "best_epoch": 2, "train_seconds": 60.0,
          "metrics": {"Recall@50": recall}, "valid": {"NDCG@10": valid_ndcg}}


def test_paper_table_columns_validation_figures_and_t_tests():
  from experiments import leaderboard  # pylint: disable=g-import-not-at-top
  records = ([_record("base", s, r, 0.1) for s, r in enumerate([0.20, 0.22, 0.21])]
             + [_record("cfm", s, r, v) for s, (r, v) in
                enumerate([(0.25, 0.12), (0.27, 0.14), (0.26, 0.13)])])
  page = leaderboard.render(records, {}, title="SSL-CFM, Table 2",
                            columns=["Recall@50", "valid_NDCG@10"],
                            results_dir="docs/results/ssl_cfm/table2",
                            compare_to=["base"])
  assert page.startswith("# SSL-CFM, Table 2\n")
  assert "`docs/results/ssl_cfm/table2/`" in page
  row = [line for line in page.splitlines() if line.startswith("| cfm |")][0]
  # cfm: Recall@50 mean 0.26, sd 0.01; validation NDCG@10 mean 0.13, sd 0.01.
  assert "0.2600 ± 0.0100 (3)" in row and "0.1300 ± 0.0100 (3)" in row
  # Welch: difference 0.05, both sds 0.01 with n = 3: t = 0.05 / sqrt(2 * 1e-4 / 3)
  # = 6.12, dof 4, two-sided p = 0.0036.
  test = [line for line in page.splitlines() if line.startswith("| cfm | base |")][0]
  assert "| Recall@50 | +0.0500 | 6.12 | 0.004 |" in test, test
  assert "transition" not in page


def test_records_keep_ainpu_and_prefix_the_second_protocol():
  from experiments import leaderboard  # pylint: disable=g-import-not-at-top
  evaluation = {"HR@10": 0.5, "HR@200": 0.9, "MRR": 0.3, "AINPU": 3.25,
                "AINPU_by_activity": [], "num_users": 7}
  kept = leaderboard._metrics_at(evaluation, (10, 20))
  assert kept == {"HR@10": 0.5, "AINPU": 3.25}
  assert leaderboard._prefixed(kept, "full") == kept
  assert leaderboard._prefixed(kept, "uniform100") == {"uniform100_HR@10": 0.5,
                                                       "AINPU": 3.25}


PCL_CONFIGS = os.path.join(ROOT, "experiments", "configs", "pcl_aisl")


def test_pcl_aisl_flagfiles_name_registered_models_and_parameters():
  from dcg_tf import configs  # pylint: disable=g-import-not-at-top
  from dcg_tf.models import registry  # pylint: disable=g-import-not-at-top
  configs.import_all()
  budgets = set()
  for name in sorted(os.listdir(PCL_CONFIGS)):
    with open(os.path.join(PCL_CONFIGS, name)) as f:
      lines = [line.strip() for line in f if line.strip()]
    flags_ = [line for line in lines if not line.startswith("#")]
    model = [line.split("=", 1)[1] for line in flags_ if line.startswith("--model=")]
    assert len(model) == 1, name
    params = dict(line[len("--param="):].split("=", 1) for line in flags_
                  if line.startswith("--param="))
    registry.resolve_params(model[0], params)        # unknown keys raise
    if name.endswith("_k5.cfg"):
      assert params["num_interests"] == "5", name
    # The shared budget: every file starts with the same comment and flags.
    budgets.add("\n".join(lines[:lines.index("--param=embedding_dim=32") + 1]))
  assert len(budgets) == 1


@pytest.mark.slow
def test_pcl_aisl_table_config_runs_under_two_protocols(tmp_path):
  """One epoch of comirec_sa from the table's flagfile; full + uniform100 scored."""
  data_dir = write_tiny_dataset(str(tmp_path / "data"), num_users=24, num_items=130,
                                seed=2)
  results, runs = tmp_path / "results", tmp_path / "runs"
  _board("--datasets=tiny=" + data_dir, "--models=comirec_sa", "--seeds=0",
         "--configs=" + PCL_CONFIGS, "--work_dir=" + str(runs),
         "--results_dir=" + str(results), "--output=" + str(tmp_path / "t1.md"),
         "--published=", "--protocols=full,uniform100", "--ks=10,20",
         "--columns=uniform100_HR@10,uniform100_NDCG@10,HR@20,AINPU",
         "--extra_flag=--epochs=1", "--extra_flag=--batch_size=32",
         "--extra_flag=--max_len=6", "--extra_flag=--param=embedding_dim=8")
  record = json.loads((results / "tiny" / "comirec_sa" / "seed0.json").read_text())
  model_dir = runs / "tiny" / "comirec_sa" / "seed0"
  for protocol, prefix in (("full", ""), ("uniform100", "uniform100_")):
    evaluation = json.loads((model_dir / ("test_%s.json" % protocol)).read_text())
    assert evaluation["protocol"] == protocol
    for key in ("HR@10", "NDCG@10", "HR@20"):
      assert record["metrics"][prefix + key] == evaluation[key]
  # The best epoch's validation metrics (validation.json: {"epoch", "step",
  # "metrics", "best"}) are kept for the valid_ columns.
  validation = json.loads((model_dir / "validation.json").read_text())
  best = [r for r in validation if r.get("best")][-1]
  assert record["valid"]["NDCG@10"] == best["metrics"]["NDCG@10"]
  # ComiRec-SA keeps all K = 4 interests active for every user.
  assert record["metrics"]["AINPU"] == 4.0 and record["protocols"] == [
      "full", "uniform100"]
  page = (tmp_path / "t1.md").read_text()
  # One seed: the cell is the value and the seed count.
  assert "| comirec_sa | %.4f (1) |" % record["metrics"]["uniform100_HR@10"] in page
  assert "Columns prefixed `uniform100_`" in page
  # The AINPU-by-activity PNG of the same run.
  png = tmp_path / "ainpu.png"
  run_module("experiments.evaluate", "--model_dir=" + str(model_dir),
             "--checkpoint=best", "--output=" + str(tmp_path / "e.json"),
             "--aisl_png=" + str(png))
  assert png.read_bytes()[:4] == b"\x89PNG"
  assert json.loads((tmp_path / "e.json").read_text())["AINPU_by_activity"]
