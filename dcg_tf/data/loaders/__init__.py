"""Raw-data loaders: format name -> function(paths, **options) -> RawData."""

from dcg_tf.data.loaders.amazon import load_amazon
from dcg_tf.data.loaders.csv_loader import load_csv
from dcg_tf.data.loaders.movielens import load_movielens
from dcg_tf.data.loaders.recbole import load_recbole
from dcg_tf.data.loaders.sequence import load_sequence

LOADERS = {
    "amazon": load_amazon,
    "sequence": load_sequence,
    "movielens": load_movielens,
    "recbole": load_recbole,
    "csv": load_csv,
}
