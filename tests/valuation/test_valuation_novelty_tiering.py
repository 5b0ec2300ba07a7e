"""Novelty (exact chunked k-NN vs brute-force NumPy, ensembles, coverage) and tiering."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuation import knn
from valuation import novelty as nv
from valuation import tiering


def _brute_knn(q, r, k):
    d = np.sqrt(((q[:, None, :].astype(np.float64) - r[None].astype(np.float64)) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, :k]


@pytest.fixture(scope="module")
def small_store():
    t = nv.embedding_novelty(6, k=4, capacity=700, members=1, encoder="identity", chunk_size=128, query_block=32)
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(500, 6)).astype(np.float32)
    s = jax.jit(t.update)(t.init(jax.random.key(0)), refs)
    return t, s, refs


def test_knn_matches_bruteforce_numpy(small_store):
    t, s, refs = small_store
    q = np.random.default_rng(1).normal(size=(75, 6)).astype(np.float32)
    d = np.asarray(jax.jit(t.knn)(s, q)[0])
    np.testing.assert_allclose(d, _brute_knn(q, refs, 4), rtol=1e-5, atol=1e-5)
    sc = jax.jit(t.score)(s, q)
    np.testing.assert_allclose(sc.novelty, _brute_knn(q, refs, 4).mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sc.spread, 0.0)  # one member: no spread
    # eager equals jit
    np.testing.assert_allclose(t.score(s, q).novelty, sc.novelty, rtol=1e-6)


def test_chunk_size_does_not_change_result_and_no_recompile(small_store):
    _, s, refs = small_store
    q = np.random.default_rng(2).normal(size=(20, 6)).astype(np.float32)
    outs = []
    for chunk, qb in [(7, 3), (128, 32), (700, 20)]:
        outs.append(np.asarray(nv.knn_sq_dists(jnp.asarray(q), s.embeddings[0], s.count, 4, chunk, qb)))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5)
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-5)
    t = nv.embedding_novelty(6, k=2, capacity=64, members=1, encoder="identity", chunk_size=16)
    score = jax.jit(t.score)
    st0 = t.init(jax.random.key(0))
    st1 = t.update(st0, refs[:10])
    score(st1, q)
    n = score._cache_size()
    score(t.update(st1, refs[10:30]), q)  # a growing store keeps its shapes
    assert score._cache_size() == n


def test_store_ring_buffer_and_partial_k():
    t = nv.embedding_novelty(2, k=3, capacity=4, members=1, encoder="identity", chunk_size=2)
    s = t.init(jax.random.key(0))
    assert np.isinf(t.score(s, np.zeros((1, 2), np.float32)).novelty[0])  # empty store
    s = t.update(s, np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_allclose(t.score(s, np.zeros((1, 2), np.float32)).novelty, [1.0])  # mean over 1 < k
    s = t.update(s, np.arange(10, dtype=np.float32).reshape(5, 2) + 100)
    assert int(s.count) == 4 and int(s.total) == 6
    big = t.update(t.init(jax.random.key(0)), np.arange(20, dtype=np.float32).reshape(10, 2))  # batch > capacity
    assert int(big.count) == 4 and int(big.total) == 10
    np.testing.assert_array_equal(np.sort(np.asarray(big.embeddings[0, :, 0])), [12, 14, 16, 18])
    # the oldest ([1, 0] and [100, 101]) were overwritten
    d = np.asarray(t.knn(s, np.zeros((1, 2), np.float32))[0, 0])
    np.testing.assert_allclose(d, _brute_knn(np.zeros((1, 2)), np.arange(2, 10).reshape(4, 2) + 100.0, 3)[0], rtol=1e-5)


def test_random_projection_ensemble_spread_and_ordering():
    rng = np.random.default_rng(3)
    t = nv.embedding_novelty(16, k=3, capacity=512, members=5, embed_dim=8, chunk_size=100)
    s = jax.jit(t.update)(t.init(jax.random.key(1)), rng.normal(size=(400, 16)).astype(np.float32))
    near = rng.normal(size=(10, 16)).astype(np.float32)
    far = near + 8.0
    score = jax.jit(t.score)
    sn, sf = score(s, near), score(s, far)
    assert sn.per_member.shape == (5, 10)
    assert np.all(np.asarray(sf.novelty) > np.asarray(sn.novelty))
    assert np.all(np.asarray(sf.spread) > 0)
    # each member is an exact k-NN in its own projection
    proj = np.asarray(s.encoder_params[2])
    emb = np.asarray(s.embeddings[2, :400])
    np.testing.assert_allclose(sn.per_member[2], _brute_knn(near @ proj, emb, 3).mean(1), rtol=1e-4)


def test_flax_encoder_pluggable():
    class Enc(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(nn.tanh(nn.Dense(8)(x)))

    x = np.random.default_rng(4).normal(size=(50, 3)).astype(np.float32)
    t = nv.embedding_novelty(3, k=2, capacity=64, members=3, embed_dim=4, encoder=nv.flax_encoder(Enc(), x[:1]))
    s = jax.jit(t.update)(t.init(jax.random.key(2)), x)
    sc = jax.jit(t.score)(s, x[:5] + 3.0)
    assert sc.novelty.shape == (5,) and np.all(np.isfinite(sc.novelty)) and np.all(sc.spread > 0)


_COV = nv.coverage_novelty(2, bins=4)
_COV_UPDATE = jax.jit(_COV.update)
_COV_SCORE = jax.jit(_COV.score)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=16, max_size=16))
def test_coverage_counts_match_numpy(points):
    x = np.asarray(points, np.float32)
    t = _COV
    s = _COV_UPDATE(t.init(-1.0, 1.0), x)
    cells = np.clip(np.floor((x + 1.0) / 0.5), 0, 3).astype(int)
    keys = [tuple(c) for c in cells]
    expected = np.array([1.0 / (keys.count(k) + 1) for k in keys])
    np.testing.assert_allclose(_COV_SCORE(s, x), expected, rtol=1e-6)


def test_coverage_hashed_table():
    t = nv.coverage_novelty(6, bins=10, table_size=4096)  # 10^6 bins > table: hashed
    x = np.random.default_rng(5).uniform(size=(300, 6)).astype(np.float32)
    s = jax.jit(t.update)(t.init(0.0, 1.0), x)
    assert s.counts.shape == (4096,) and int(s.counts.sum()) == 300
    assert np.all(np.asarray(t.score(s, x)) <= 0.5)  # every seen point has count ≥ 1
    np.testing.assert_allclose(t.score(s, np.full((1, 6), 0.55, np.float32) + 0.0), t.score(s, np.full((1, 6), 0.57, np.float32)))


def test_assign_tier_seed_thresholds():
    th = jnp.array([0.5, 3.0])
    got = jax.jit(tiering.assign_tier)(jnp.array([0.0, 0.49, 0.5, 2.99, 3.0, 6.0]), th)
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 2, 2])


def test_tier_stats():
    tiers = jnp.array([0, 2, 2, 1, 2])
    vals = jnp.array([1.0, 10.0, 20.0, 4.0, 30.0])
    s = tiering.tier_stats(tiers, vals)
    np.testing.assert_allclose(s.count, [1, 1, 3])
    np.testing.assert_allclose(s.percent, [20, 20, 60])
    np.testing.assert_allclose(s.total_value, [1, 4, 60])
    np.testing.assert_allclose(s.mean_value, [1, 4, 20])
    empty = tiering.tier_stats(jnp.array([2, 2]), jnp.array([1.0, 3.0]))
    np.testing.assert_allclose(empty.mean_value, [0, 0, 2])


def test_calibration_recovers_shrunk_thresholds():
    rng = np.random.default_rng(6)
    realized = rng.uniform(0, 6, 2000)
    predicted = 0.5 * realized + 0.2  # a model that shrinks by half
    cal = tiering.calibrate_thresholds(predicted, realized, jnp.array([0.5, 3.0]))
    assert float(cal.accuracy) > 0.99 > float(cal.baseline_accuracy)
    np.testing.assert_allclose(cal.thresholds, [0.45, 1.7], atol=0.05)
    assert int(cal.confusion.sum()) == 2000
    assert int(jnp.trace(cal.confusion)) == round(float(cal.accuracy) * 2000)
    cm = tiering.confusion_matrix(jnp.array([0, 1, 2, 2]), jnp.array([0, 2, 2, 1]))
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 0, 1], [0, 1, 1]])


def test_smallest_k_exact_with_ties():
    rng = np.random.default_rng(8)
    f = jax.jit(knn._smallest_k, static_argnums=1)
    for c in (64 * 7, 100, 3):  # wide rows, and rows narrower than k
        d = rng.integers(0, 50, size=(33, c)).astype(np.float32)  # many ties
        d[3] = np.inf
        d[4, :5] = -1.0  # the k smallest all adjacent
        np.testing.assert_array_equal(f(jnp.asarray(d), 5), np.sort(d, axis=1)[:, : min(5, c)])
    refs = rng.normal(size=(2048, 8)).astype(np.float32)
    q = rng.normal(size=(40, 8)).astype(np.float32)
    got = nv.knn_sq_dists(jnp.asarray(q), jnp.asarray(refs), jnp.asarray(2000), 5, 1024, 16)
    np.testing.assert_allclose(np.sqrt(got), _brute_knn(q, refs[:2000], 5), rtol=1e-5, atol=1e-5)


# one compiled search shared by the certificate tests: 4000-row store (not a multiple of the chunk,
# so the last chunk is clamped and overlapping rows are masked), 256-row chunks, 32-row groups:
# 128 groups, more than either re-rank tier (k + 2, k + 32) covers
_CERT = jax.jit(lambda q, r, c: knn.knn_sq_dists_certified(q, r, c, 5, 256, 16))


def test_screen_certifies_generic_data_and_falls_back_on_adversarial_data():
    rng = np.random.default_rng(9)
    q = rng.normal(size=(40, 8)).astype(np.float32)
    cases = {
        "generic": rng.normal(size=(4000, 8)),
        # 10 distinct points repeated 400 times each: group minima tie, the screen cannot certify
        "duplicates": np.tile(rng.normal(size=(10, 8)), (400, 1)),
        # every row at the same distance from the origin, queried at the origin: no gap to prune on
        "sphere": 3.0 * (lambda v: v / np.linalg.norm(v, axis=1, keepdims=True))(rng.normal(size=(4000, 8))),
        # one far outlier dominates R (the error bound), the rest tightly clustered
        "outlier": np.concatenate([1e3 * np.ones((1, 8)), 1e-3 * rng.normal(size=(3999, 8))]),
    }
    queries = {"sphere": 0.0 * q, "outlier": 1e-3 * q}
    certified = {}
    for name, refs in cases.items():
        refs = refs.astype(np.float32)
        qq = queries.get(name, q).astype(np.float32)
        for count in (4000, 2900, 3):  # full, partial (ring buffer filling), fewer rows than k
            d, cert = _CERT(jnp.asarray(qq), jnp.asarray(refs), jnp.asarray(count, jnp.int32))
            want = _brute_knn(qq, refs[:count], 5)
            want = np.pad(want, ((0, 0), (0, 5 - want.shape[1])), constant_values=np.inf)
            np.testing.assert_allclose(np.sqrt(np.asarray(d)), want, rtol=1e-4, atol=1e-5, err_msg=f"{name}, count {count}")
            if count == 4000:
                certified[name] = float(np.mean(np.asarray(cert)))
    assert certified["generic"] == 1.0  # the fast path does the work on ordinary data
    assert certified["duplicates"] < 1.0 and certified["sphere"] < 1.0  # and the fallback ran, exactly


def test_second_tier_compacts_few_uncertified_queries_and_reruns_crowded_blocks(monkeypatch):
    # Up to _TIER2_ROWS uncertified queries of a block go on alone (padded sub-block); more send the
    # whole block on. 20 rows in 20 groups sit within 1e-4 of c = 30·e1, below float32's resolution
    # of the screen there (‖r‖² ≈ 900): the screen orders them at random, so the first tier's k + 2
    # groups miss some of a nearby query's k nearest and cannot certify; the second tier's k + 32
    # groups hold all 20 and certify. Every other row is far from c.
    monkeypatch.setattr(knn, "_TIER2_ROWS", 4)
    rng = np.random.default_rng(10)
    refs = rng.normal(size=(4000, 8))
    near = 64 * np.arange(3, 63, 3)  # one row in each of 20 groups
    c = np.r_[30.0, np.zeros(7)]
    refs[near] = c + 1e-4 * rng.normal(size=(20, 8))
    q = rng.normal(size=(32, 8))
    centre = np.r_[[1, 5, 9], 16 + np.arange(8)]  # block 0: 3 near c (compacted); block 1: 8 (whole block)
    q[centre] = c + 1e-4 * rng.normal(size=(11, 8))
    refs, q = refs.astype(np.float32), q.astype(np.float32)
    d, cert = jax.jit(lambda q, r, c: knn.knn_sq_dists_certified(q, r, c, 5, 256, 16))(jnp.asarray(q), jnp.asarray(refs), jnp.asarray(4000))
    np.testing.assert_allclose(np.sqrt(np.asarray(d)), _brute_knn(q, refs, 5), rtol=1e-4)
    assert np.asarray(cert).all()  # the second tier certified them; no full scan needed
