"""Hand-built leaderboard run records for the sweep tests (Figures 6-7).

Dataset "d"; the SSL-CFM family's own records have ssl_weight 0.3, dropout
0.3, uniform SSL items and 5 epochs. Test Recall@50 per (model, seed):
  ssl_cfm            alpha 0.3, dr 0.3   seeds 0, 1: 0.30, 0.32
  ssl_cfm_alpha1     alpha 1              seeds 0, 1: 0.34, 0.38
  ssl_cfm_alpha0.1   alpha 0.1            seed 0:     0.20
  ssl_cfm_alpha3     alpha 3 but 10 epochs (another budget: in no series)
  ssl_cfm_dr0.5      dr 0.5               seed 0:     0.90
  ssl_cfm_training_items  training-distribution SSL items (in no series)
  spread_out         alpha 0.3            seed 0:     0.25
  spread_out_alpha1  alpha 1              seed 0:     0.27
  ssl_baseline       alpha 0              seeds 0, 1, 2: 0.1, 0.2, 0.3
and ssl_cfm on another dataset "e" (ignored).
"""

BASE = {"augmentation": "cfm", "ssl_weight": 0.3, "dropout_rate": 0.3,
        "ssl_item_distribution": "uniform"}


def record(model, seed, recall, dataset="d", epochs=5, valid=None, **params):
  return {"dataset": dataset, "model": model, "seed": seed,
          "metrics": {"Recall@50": recall, "Recall@10": recall / 2},
          "valid": {"Recall@50": recall if valid is None else valid},
          "params": dict(BASE, seed=seed, **params),
          "trainer": {"epochs": epochs, "seed": seed, "batch_size": 256}}


def records():
  return [
      record("ssl_cfm", 0, 0.30), record("ssl_cfm", 1, 0.32, valid=0.5),
      record("ssl_cfm_alpha1", 0, 0.34, ssl_weight=1.0),
      record("ssl_cfm_alpha1", 1, 0.38, ssl_weight=1.0),
      record("ssl_cfm_alpha0.1", 0, 0.20, ssl_weight=0.1),
      record("ssl_cfm_alpha3", 0, 0.99, ssl_weight=3.0, epochs=10),
      record("ssl_cfm_dr0.5", 0, 0.90, dropout_rate=0.5),
      record("ssl_cfm_training_items", 0, 0.95,
             ssl_item_distribution="training"),
      record("spread_out", 0, 0.25, augmentation="none", dropout_rate=0.0),
      record("spread_out_alpha1", 0, 0.27, augmentation="none",
             dropout_rate=0.0, ssl_weight=1.0),
      record("ssl_baseline", 0, 0.1, augmentation="none", ssl_weight=0.0),
      record("ssl_baseline", 1, 0.2, augmentation="none", ssl_weight=0.0),
      record("ssl_baseline", 2, 0.3, augmentation="none", ssl_weight=0.0),
      record("ssl_cfm", 0, 0.77, dataset="e"),
  ]
