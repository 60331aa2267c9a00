"""PCL-AISL's prototypes: k-means of the key encoder's item vectors, per epoch.

Li et al. (CIKM'22), section 2.3.2 "Prototype Augmented Module": the
prototypes C are the k-means centroids of the key encoder's outputs
G'(e'_x) over the items, |C| fixed (1,000 in section 3.1), each with the
temperature tau_c of Eq. 13; `dcg_tf.losses.prototypical_contrastive`
scores items against them (Eq. 12). They are training-only state of the
training model (never of a tower), recomputed at the start of every epoch by
`PrototypeRefresh` (a `dcg_tf.training.callbacks.EpochCallback`), and
checkpointed with the model.
"""

import faiss
import numpy as np
import tensorflow as tf

from dcg_tf._keras import keras
from dcg_tf.training.callbacks import EpochCallback


def cluster_temperatures(keys, centroids, assignments):
  """tau_c of Eq. 13: sum_{x in c} ||e'_x - c||_2 / (N_c log(N_c + 1)).

  Clusters with fewer than two items (Eq. 13 is 0/0 for N_c = 0 and 0 for a
  single item sitting on its centroid) get the largest tau of the others,
  ProtoNCE's rule (Li et al., ICLR'21, section 3.3); if no cluster has two
  items every tau is 1.

  Args:
    keys: float [N, D], e'_x (the key encoder's outputs).
    centroids: float [C, D].
    assignments: int [N] in [0, C).

  Returns:
    float32 [C].
  """
  keys = np.asarray(keys, np.float64)
  centroids = np.asarray(centroids, np.float64)
  assignments = np.asarray(assignments, np.int64)
  num = centroids.shape[0]
  distance = np.linalg.norm(keys - centroids[assignments], axis=1)   # [N]
  total = np.bincount(assignments, weights=distance, minlength=num)  # [C]
  count = np.bincount(assignments, minlength=num).astype(np.float64)  # [C]
  defined = count >= 2
  tau = np.ones(num)
  if defined.any():
    tau[defined] = total[defined] / (count[defined] * np.log(count[defined] + 1))
    tau[~defined] = tau[defined].max()
  return tau.astype(np.float32)


def kmeans(vectors, num_clusters, seed, iterations=20, spherical=True):
  """Faiss k-means: (centroids float32 [C, D], assignments int64 [N]).

  Deterministic for a given `seed` (Faiss draws its initial centroids from
  it); `spherical` renormalises the centroids after each iteration (cosine
  clusters, as s is the cosine in Eq. 12).
  """
  vectors = np.ascontiguousarray(vectors, np.float32)
  if vectors.shape[0] < num_clusters:
    raise ValueError("kmeans: %d vectors cannot make %d clusters; lower "
                     "num_prototypes" % (vectors.shape[0], num_clusters))
  km = faiss.Kmeans(vectors.shape[1], int(num_clusters), niter=int(iterations),
                    seed=int(seed) % (2 ** 31), spherical=spherical,
                    min_points_per_centroid=1, verbose=False)
  km.train(vectors)
  _, assignments = km.index.search(vectors, 1)
  return km.centroids.astype(np.float32), assignments[:, 0].astype(np.int64)


@keras.utils.register_keras_serializable(package="dcg_tf")
class Prototypes(keras.layers.Layer):
  """Non-trainable prototypes, their temperatures and each item's cluster.

  Weights (checkpointed with the training model that owns this layer):
    prototypes     float [C, D]   the centroids c;
    temperatures   float [C]      tau_c (Eq. 13);
    item_clusters  int64 [N+1]    the cluster of item i (row 0, padding: 0).
  Before the first `assign` every prototype is zero and every tau 1.

  Args:
    num_prototypes: C.
    dim: D.
    num_items: N.

  Example:
    >>> protos = Prototypes(1000, 64, data.num_items)
    >>> protos.assign(centroids, taus, assignments)     # at an epoch start
    >>> negatives = protos.sample_negatives(clusters, 100, seed)   # [B, 100]
  """

  def __init__(self, num_prototypes, dim, num_items, **kwargs):
    super().__init__(**kwargs)
    if int(num_prototypes) < 2:
      raise ValueError("Prototypes: num_prototypes must be >= 2, got %r"
                       % (num_prototypes,))
    self.num_prototypes = int(num_prototypes)
    self.dim = int(dim)
    self.num_items = int(num_items)
    self.prototypes = self.add_weight(
        name="prototypes", shape=(self.num_prototypes, self.dim),
        initializer="zeros", trainable=False)                     # [C, D]
    self.temperatures = self.add_weight(
        name="temperatures", shape=(self.num_prototypes,), initializer="ones",
        trainable=False)                                          # [C]
    self.item_clusters = self.add_weight(
        name="item_clusters", shape=(self.num_items + 1,), dtype="int64",
        initializer="zeros", trainable=False)                     # [N+1]

  def assign(self, centroids, temperatures, assignments):
    """Writes the state of one refresh; `assignments` [N] are items 1..N."""
    self.prototypes.assign(np.asarray(centroids, np.float32))
    self.temperatures.assign(np.asarray(temperatures, np.float32))
    self.item_clusters.assign(np.concatenate(
        [[0], np.asarray(assignments, np.int64)]))

  def clusters_of(self, item_ids):
    """c_x of items: int64 [...]."""
    return tf.gather(self.item_clusters, tf.cast(item_ids, tf.int64))

  def sample_negatives(self, clusters, num_negatives, seed):
    """r distinct prototypes other than each row's own: int64 [B, r].

    Uniform over the subsets of size r of the C - 1 other clusters (the r
    largest of a stateless uniform draw keyed by `seed`, the own cluster
    excluded); requires r <= C - 1.
    """
    if not 1 <= num_negatives <= self.num_prototypes - 1:
      raise ValueError("Prototypes: num_negatives must be in [1, C-1=%d], got %d"
                       % (self.num_prototypes - 1, num_negatives))
    clusters = tf.cast(clusters, tf.int64)                        # [B]
    uniform = tf.random.stateless_uniform(
        tf.stack([tf.size(clusters), self.num_prototypes]), seed)  # [B, C]
    own = tf.equal(tf.range(self.num_prototypes, dtype=tf.int64)[None, :],
                   clusters[:, None])                             # [B, C]
    uniform = tf.where(own, -tf.ones_like(uniform), uniform)
    _, negatives = tf.math.top_k(uniform, k=num_negatives)        # [B, r]
    return tf.cast(negatives, tf.int64)

  def get_config(self):
    config = super().get_config()
    config.update(num_prototypes=self.num_prototypes, dim=self.dim,
                  num_items=self.num_items)
    return config


class PrototypeRefresh(EpochCallback):
  """At each epoch start: k-means of the key vectors -> the model's prototypes.

  Reads `model.prototype_keys(seed, epoch)` (float [N, D], e'_x through the
  key encoder for items 1..N), clusters them with `kmeans` (seeded by
  `(seed, epoch)`), computes Eq. 13 and assigns the model's `prototypes`
  (a `Prototypes` layer). See `dcg_tf.training.callbacks.EpochCallback` for
  the resume rule.

  Args:
    data, refreshed_epoch, seed: as `EpochCallback`.
    iterations: k-means iterations.
  """

  def __init__(self, data, refreshed_epoch, seed=0, iterations=20):
    super().__init__(data, refreshed_epoch, seed)
    self.iterations = int(iterations)

  def refresh(self, epoch):
    model = self.model
    keys = model.prototype_keys(self.seed, epoch)                 # [N, D]
    centroids, assignments = kmeans(
        keys, model.prototypes.num_prototypes,
        seed=self.seed * 1000003 + epoch, iterations=self.iterations)
    model.prototypes.assign(
        centroids, cluster_temperatures(keys, centroids, assignments),
        assignments)
