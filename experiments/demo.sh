#!/usr/bin/env bash
# The README's demo: synthetic Amazon-format data -> preprocess -> train ->
# evaluate -> export -> Faiss index -> recommendations. Runs in a few minutes
# on 2 cores; everything it writes goes under $1 (default demo_out/).
set -euo pipefail
OUT=${1:-demo_out}
PY=${PY:-.venv/bin/python}
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n=== %s\n' "$*"; }

step "1/6 generate synthetic Amazon-2014-format reviews and metadata"
$PY -m experiments.generate_synthetic --formats=amazon --output_dir="$OUT/raw" \
    --num_events=60000 --seed=0

step "2/6 preprocess (5-core, leave-one-out, sessions by a 1-hour gap)"
$PY -m experiments.preprocess --format=amazon \
    --input="$OUT/raw/reviews_Synthetic.json,$OUT/raw/meta_Synthetic.json" \
    --output_dir="$OUT/data" --split=leave_one_out \
    --min_user_interactions=5 --min_item_interactions=5

step "3/6 train the SASRec-style two-tower with in-batch softmax"
$PY -m experiments.train --model=sasrec --data_dir="$OUT/data" \
    --model_dir="$OUT/model" --epochs=10 --batch_size=128 --last_cut \
    --max_len=20 --embedding_dim=32 --learning_rate=0.003 --param=logq_correction=False

step "4/6 evaluate: full ranking and 100 popularity-sampled negatives"
$PY -m experiments.evaluate --model_dir="$OUT/model" --data_dir="$OUT/data" \
    --protocol=full --output="$OUT/eval_full.json"
$PY -m experiments.evaluate --model_dir="$OUT/model" --data_dir="$OUT/data" \
    --protocol=popular100 --output="$OUT/eval_popular100.json"

step "5/6 export the towers and build a Faiss HNSW index"
$PY -m experiments.export --model_dir="$OUT/model" --export_dir="$OUT/export"
$PY -m experiments.build_index --export_dir="$OUT/export" --index=hnsw

step "6/6 recommendations for three users of the test split"
for u in 0 1 2; do
  hist=$($PY - "$OUT/data" "$u" <<'PYEOF'
import sys
import dcg_tf  # noqa: F401
from dcg_tf.data.dataset import ProcessedDataset
from dcg_tf.data import pipeline
data = ProcessedDataset.load(sys.argv[1])
batch = next(iter(pipeline.eval_dataset(data, "test", batch_size=8, max_len=20)))
vocab = data.vocab("item")
row = batch["history"][int(sys.argv[2])].numpy()
print(",".join(vocab[i - 1] for i in row if i > 0))
PYEOF
)
  echo "user $u history: $hist"
  $PY -m experiments.retrieve --export_dir="$OUT/export" --index_dir="$OUT/export/index_hnsw" \
      --history="$hist" --k=5
done
echo; echo "demo finished: outputs in $OUT/"
