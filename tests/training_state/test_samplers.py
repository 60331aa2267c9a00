"""AliasSampler: exact table mass, sampled frequencies, proposal helpers."""

import numpy as np
import pytest
import tensorflow as tf

from dcg_tf.training_state import samplers


def _table_mass(accept, alias):
  """P(i) = (accept[i] + sum_{k: alias[k] = i} (1 - accept[k])) / n."""
  n = accept.size
  return (accept + np.bincount(alias, weights=1.0 - accept, minlength=n)) / n


@pytest.mark.parametrize("seed,size", [(0, 1000), (1, 1000), (2, 7), (3, 200_000)])
def test_alias_tables_reproduce_the_distribution_exactly(seed, size):
  rng = np.random.default_rng(seed)
  p = rng.pareto(1.0, size=size) * (rng.random(size) > 0.1)  # heavy tail, zeros
  p /= p.sum()
  accept, alias = samplers.build_alias_tables(p)
  np.testing.assert_allclose(_table_mass(accept, alias), p, rtol=0, atol=1e-12)
  assert np.all((accept >= 0) & (accept <= 1))
  # Zero-probability ids keep nothing and are no bucket's alias.
  assert np.all(accept[p == 0] == 0)
  assert not np.isin(np.flatnonzero(p == 0), alias[accept < 1]).any()


def test_uniform_up_to_rounding_keeps_every_bucket():
  accept, alias = samplers.build_alias_tables(np.full(7, 1 / 7))
  np.testing.assert_allclose(_table_mass(accept, alias), 1 / 7, atol=1e-15)


def test_hand_worked_tables():
  # p = [0.5, 0.25, 0.25], n = 3: scaled = [1.5, 0.75, 0.75]. Smalls 1, 2 have
  # deficits 0.25, 0.25 (cumulative D = [0.25, 0.5]); large 0 has surplus 0.5
  # (S = [0.5]). Both smalls start below S_1 -> alias 0, accept 0.75; the last
  # large keeps its bucket. Mass of 0: (1 + 0.25 + 0.25) / 3 = 0.5.
  accept, alias = samplers.build_alias_tables(np.array([0.5, 0.25, 0.25]))
  np.testing.assert_allclose(accept, [1.0, 0.75, 0.75])
  np.testing.assert_array_equal(alias[1:], [0, 0])
  # p = [0.1, 0.3, 0.35, 0.25]: scaled = [0.4, 1.2, 1.4, 1.0]. Small 0 (deficit
  # 0.6) goes to large 1 (surplus 0.2, S = 0.2), which is overdrawn by 0.4: it
  # keeps 0.6 and aliases large 2 (surplus 0.4, S = 0.6), which keeps 1.
  # Masses: item 1 = (0.6 + 0.6) / 4 = 0.3, item 2 = (1 + 0.4) / 4 = 0.35.
  accept, alias = samplers.build_alias_tables(np.array([0.1, 0.3, 0.35, 0.25]))
  np.testing.assert_allclose(accept, [0.4, 0.6, 1.0, 1.0])
  np.testing.assert_array_equal(alias[:2], [1, 2])


def test_sampled_frequencies_within_binomial_tolerance():
  p = samplers.unigram(np.array([0, 50, 20, 10, 5, 1, 0, 14]), power=1.0)
  sampler = samplers.AliasSampler(p)
  draws = 200_000
  ids, q = sampler.sample(draws, seed=tf.constant([3, 4]))
  ids = ids.numpy()
  counts = np.bincount(ids, minlength=p.size)
  expected = draws * p
  sd = np.sqrt(draws * p * (1 - p))
  assert np.all(np.abs(counts - expected) <= 5 * sd + 1e-9), (counts, expected)
  assert counts[0] == 0 and counts[6] == 0  # zero-probability ids never drawn
  np.testing.assert_allclose(q.numpy(), p[ids].astype(np.float32))
  assert ids.dtype == np.int64


def test_stateless_draws_repeat_and_generator_draws_resume():
  sampler = samplers.AliasSampler(samplers.uniform(50))
  a, _ = sampler.sample(100, seed=tf.constant([1, 2]))
  b, _ = sampler.sample(100, seed=tf.constant([1, 2]))
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  # A generator's stream depends on its state only (what a checkpoint restores).
  g1, g2 = tf.random.Generator.from_seed(7), tf.random.Generator.from_seed(7)
  g1.uniform([3])
  g2.uniform([3])
  np.testing.assert_array_equal(sampler.sample(20, generator=g1)[0].numpy(),
                                sampler.sample(20, generator=g2)[0].numpy())


def test_sampling_in_tf_function_and_probability_lookup():
  p = samplers.log_uniform(10)
  sampler = samplers.AliasSampler(p)
  ids, q = tf.function(lambda: sampler.sample(64, seed=tf.constant([0, 1])))()
  assert ids.numpy().min() >= 1 and ids.numpy().max() <= 10
  np.testing.assert_allclose(sampler.probability(tf.constant([1, 10])).numpy(),
                             [p[1], p[10]], rtol=1e-6)


def test_proposal_helpers_hand_worked():
  # log_uniform(3): p_i = log((i+1)/i) / log 4 -> [0, 0.5, 0.29248, 0.20752].
  np.testing.assert_allclose(samplers.log_uniform(3),
                             [0, 0.5, np.log(1.5) / np.log(4), np.log(4 / 3) / np.log(4)])
  np.testing.assert_allclose(samplers.uniform(4), [0, 0.25, 0.25, 0.25, 0.25])
  # counts [_, 16, 1] ** 0.75 = [8, 1] -> [8/9, 1/9]; row 0 ignored.
  np.testing.assert_allclose(samplers.unigram([99, 16, 1], power=0.75), [0, 8 / 9, 1 / 9])


def test_bad_probabilities_are_rejected():
  with pytest.raises(ValueError, match="entry 1"):
    samplers.AliasSampler([0.5, -0.1])
  with pytest.raises(ValueError, match="sum to 0"):
    samplers.AliasSampler([0.0, 0.0])
  with pytest.raises(ValueError, match="1-D"):
    samplers.AliasSampler(np.ones((2, 2)))
  with pytest.raises(ValueError, match="all item counts are 0"):
    samplers.unigram([5, 0, 0])
