"""Novelty scores as (init, update, score) pure functions over a state pytree (optax style).

* :func:`embedding_novelty`: the mean Euclidean distance from a datapoint's embedding to its k
  nearest stored embeddings, exact. The store is a fixed-capacity buffer with a count, so shapes
  are static and one compiled function serves a growing store. Scoring scans the store in chunks,
  keeps each 32-row group's screened minimum, re-ranks the best k+2 groups directly and certifies
  the result against a float32 error bound (falling back to a full scan otherwise; see
  :func:`knn_sq_dists`), processing queries in blocks: working memory is
  O(query_block × (chunk_size + capacity/32)), 31 MiB per block at 1M stored embeddings. Datapoints
  are embedded by an ensemble of encoders (random projections by default; any flax module can be
  plugged in) and the novelty is averaged over members, with their spread (std) reported.
* :func:`coverage_novelty`: 1/(count+1) of the datapoint's state–action bin; bins are a dense grid
  when it fits the table and hashed into a fixed table otherwise, all jitted.

The shape-setting settings (k, capacity, chunk sizes, bins) are fixed when the transform is built,
as in optax; everything that changes per call lives in the state.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array
EncoderApply = Callable[[Any, Array], Array]  # (params, x [B, d_in]) -> [B, d_emb]


class NoveltyTransform(NamedTuple):
    """init(...) -> state; update(state, x) -> state; score(state, x) -> scores."""

    init: Callable[..., Any]
    update: Callable[..., Any]
    score: Callable[..., Any]


# ----------------------------------------------------------------------------- exact k-NN, chunked

_GROUP = 32  # reference rows per screening group (32 measured ~5% faster than 64 on CPU; 16 no faster)
_EXTRA = 2  # groups kept beyond k; the certificate compares against the (k + _EXTRA)-th group minimum
_EXTRA2 = 32  # second tier, for queries with near-ties, before the full scan
_TIER2_ROWS = 16  # uncertified queries per block re-ranked on their own (more: the whole block is)
_U = 2.0**-24  # float32 unit roundoff


def _sq_dists(q: Array, qn: Array, r: Array, rn: Array) -> Array:
    # ‖q−r‖² = ‖q‖² − 2q·r + ‖r‖², one matmul per block (the expansion sklearn's brute search uses)
    # HIGHEST: GPUs otherwise run float32 matmuls in TF32 (~1e-3 relative), no longer exact
    qr = jnp.matmul(q, r.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.maximum(qn[:, None] - 2.0 * qr + rn[None, :], 0.0)


def _smallest_k_idx(x: Array, k: int) -> tuple[Array, Array]:
    """([Q, k] values ascending, [Q, k] column indices) of the k smallest entries per row of x [Q, C].

    For small k: k passes of min/argmin, each removing exactly one entry (ties keep their
    multiplicity). XLA's CPU top_k inside a loop body costs as much as the distance matmul; these
    passes are fused reductions over a row that is already in cache.
    """
    kk = min(k, x.shape[1])
    if kk > 16:
        v, i = jax.lax.top_k(-x, kk)
        return -v, i
    iota = jnp.arange(x.shape[1])
    vals, idxs = [], []
    for _ in range(kk):
        i = jnp.argmin(x, axis=1)
        vals.append(jnp.min(x, axis=1))
        idxs.append(i)
        x = jnp.where(iota[None, :] == i[:, None], jnp.inf, x)
    return jnp.stack(vals, 1), jnp.stack(idxs, 1)


def _smallest_k(dist: Array, k: int) -> Array:
    """[Q, min(k, C)] the k smallest entries per row of dist [Q, C], exactly, ascending."""
    return _smallest_k_idx(dist, k)[0]


def _group_size(chunk: int) -> int:
    g = _GROUP
    while chunk % g:
        g //= 2
    return g


def knn_sq_dists(queries: Array, refs: Array, count: Array, k: int, chunk_size: int = 2048, query_block: int = 256) -> Array:
    """Exact k smallest squared distances from each query to the first ``count`` rows of ``refs``.

    Screen, re-rank, certify (every query, any data):

    1. Screen: one pass over the store in chunks computes s = ‖r‖² − 2q·r (the distance less the
       query's constant ‖q‖²) by one matmul, [q, 1]·[−2r, ‖r‖²], and keeps only each group's
       minimum (groups of 32 consecutive rows): a [block, capacity/32] table instead of a running
       top-k per chunk.
    2. Re-rank: the k + 2 groups with the smallest minima are gathered and their distances
       computed directly as Σ(q−r)² (no cancellation), and the k smallest taken. The k + 2 groups
       are found among the k + 2 chunks with the smallest minima (a chunk holding one of them
       has its minimum ≤ the (k+2)-th group minimum, and at most k + 2 chunks can), so the
       selection reads [block, k+2, chunk/32] minima, not the whole table.
    3. Certify: a group left out has screened minimum ≥ τ (the (k+2)-th smallest minimum), so each
       of its rows is at true squared distance ≥ τ + ‖q‖² − E, where E bounds the float32 error of
       the screen (|fl(s) − s| ≤ 2(d+4)u(R² + 2‖q‖R + ‖q‖²), R the largest stored norm, u = 2⁻²⁴;
       this covers the d+1-term dot, ≤ (d+1)u(2‖q‖R + R²), plus the rounding of ‖r‖², ≤ d·u·R²).
       If the k-th re-ranked distance (rounded up) is ≤ that, no row left out can be nearer: the
       result is the exact k nearest. Uncertified queries (near-ties between groups; up to 16 per
       block are compacted into a sub-block, more re-run the whole block) re-rank k + 32 groups
       and certify again; if that fails too (e.g. many duplicates) they are redone by the full
       chunked scan with a running k-smallest merge, so the result is exact whatever the data;
       only the speed depends on it.

    Args:
      queries: [Q, d].
      refs: [C, d] fixed-capacity store; rows ≥ count are ignored.
      count: [] number of valid rows.
      k: neighbours (static).
      chunk_size: reference rows per scan step (static).
      query_block: queries per block (static). Working memory per block: query_block × chunk_size
        distances, query_block × C/32 group minima and query_block × (k+2)·32 gathered rows
        (2, 31 and 15 MiB at the defaults, d = 64 and C = 1M).

    Returns:
      [Q, k] ascending squared distances; +inf where fewer than k rows are stored.

    Under an outer ``vmap`` the fallback's ``lax.cond`` turns into a select and always runs
    (correct, slower); :func:`embedding_novelty` maps over ensemble members with ``lax.map``.
    """
    best, _ = knn_sq_dists_certified(queries, refs, count, k, chunk_size, query_block)
    return best


def knn_sq_dists_certified(queries: Array, refs: Array, count: Array, k: int, chunk_size: int = 2048, query_block: int = 256) -> tuple[Array, Array]:
    """:func:`knn_sq_dists` plus [Q] bool: whether the screen certified the query (False: it was
    redone by the full scan; the distances are exact either way)."""
    cap, d = refs.shape
    chunk = min(chunk_size, cap)
    g = _group_size(chunk)
    gpc = chunk // g
    n_chunks = -(-cap // chunk)
    n_groups = n_chunks * gpc
    kk = min(k + _EXTRA, n_groups)
    # Chunks are read in place with dynamic_slice (no padded copy of the store). The last chunk's
    # start is clamped to cap − chunk; rows it shares with the previous chunk are masked out.
    starts = jnp.arange(n_chunks) * chunk
    count = jnp.asarray(count)
    valid = jnp.arange(cap) < count
    rn_all = jnp.sum(refs * refs, axis=-1)
    rn_masked = jnp.where(valid, rn_all, jnp.inf)  # empty rows screen as +inf
    r2 = jnp.max(jnp.where(valid, rn_all, 0.0))

    def chunk_rows(start):
        begin = jnp.minimum(start, cap - chunk)
        r = jax.lax.dynamic_slice(refs, (begin, 0), (chunk, d))
        rn = jax.lax.dynamic_slice(rn_masked, (begin,), (chunk,))
        return r, jnp.where(begin + jnp.arange(chunk) >= start, rn, jnp.inf)

    def full_scan(q):
        qn = jnp.sum(q * q, axis=-1)

        def step(best, start):
            r, rn = chunk_rows(start)
            dist = jnp.where(jnp.isfinite(rn)[None, :], _sq_dists(q, qn, r, rn), jnp.inf)
            return _smallest_k(jnp.concatenate([best, dist], axis=1), k)[:, :k], None

        init = jnp.full((q.shape[0], k), jnp.inf, q.dtype)
        guarded = lambda b, s: jax.lax.cond(s < count, step, lambda b, _: (b, None), b, s)  # noqa: E731
        best, _ = jax.lax.scan(guarded, init, starts)
        return best

    def block(q):
        qb = q.shape[0]
        qn = jnp.sum(q * q, axis=-1)

        # ‖r‖² rides in the matmul as a 65th column ([q, 1]·[−2r, ‖r‖²]): the reduction then reads
        # the dot's output directly; ~10-15% faster on XLA CPU than adding ‖r‖² afterwards (measured,
        # benchmarks/results/valuation_throughput_cpu.md). The augmented chunk is built per step, not
        # once per call, so no second copy of the store is made (that variant was also slower).
        qa = jnp.concatenate([q, jnp.ones((qb, 1), q.dtype)], axis=1)

        def screen(_, start):
            r, rn = chunk_rows(start)  # −2r is exact; +inf in rn (masked rows) screens as +inf
            ra = jnp.concatenate([-2.0 * r, rn[:, None]], axis=1)
            s = jnp.matmul(qa, ra.T, precision=jax.lax.Precision.HIGHEST)
            return None, jnp.min(s.reshape(qb, gpc, g), axis=2)

        def guarded(c, start):  # chunks past the count cost nothing (static shapes, dynamic work)
            return jax.lax.cond(start < count, screen, lambda c, _: (None, jnp.full((qb, gpc), jnp.inf, q.dtype)), c, start)

        _, mins = jax.lax.scan(guarded, None, starts)  # [n_chunks, qb, gpc]

        def table(rows):  # [m, n_groups] minima of some of the block's queries
            return jnp.moveaxis(mins[:, rows], 0, 1).reshape(-1, n_groups)

        if n_chunks > kk:  # the k+2 best chunks first, then their groups (docstring, step 2)
            cv, ci = _smallest_k_idx(jnp.min(mins, axis=2).T, kk)  # [qb, kk]
            # an all-+inf chunk may be picked twice (argmin of a row of +inf): void its groups
            sub = jnp.where(jnp.isfinite(cv)[:, :, None], mins[ci, jnp.arange(qb)[:, None]], jnp.inf)
            gv, gj = _smallest_k_idx(sub.reshape(qb, kk * gpc), kk)
            top = (gv, jnp.take_along_axis(ci, gj // gpc, axis=1) * gpc + gj % gpc)
        else:
            top = _smallest_k_idx(table(slice(None)), kk)

        def rerank(q, qn, gmin, gi, per_group):
            """Exact distances from q [m, d] to the rows of the groups gi [m, n], then the certificate."""
            m, n = gi.shape
            c, j = gi // gpc, gi % gpc
            first = jnp.minimum(c * chunk, cap - chunk) + j * g  # [m, n] first row of each group
            rows = first[:, :, None] + jnp.arange(g)  # [m, n, g]
            # a +inf minimum marks a group with no valid rows (argmin may return an already taken one)
            ok = (rows >= (c * chunk)[:, :, None]) & (rows < count) & jnp.isfinite(gmin)[:, :, None]
            # each group is g contiguous rows: slice them (a gather of [g, d] blocks, cheaper on CPU
            # than gathering m·n·g single rows)
            take = jax.vmap(lambda f: jax.lax.dynamic_slice(refs, (f, 0), (g, d)))
            if per_group:  # one group at a time: the gathered rows stay [m, g, d]
                exact = jax.lax.map(lambda f: jnp.sum((q[:, None, :] - take(f)) ** 2, axis=-1), first.T)
                exact = jnp.moveaxis(exact, 0, 1)
            else:
                exact = jnp.sum((q[:, None, None, :] - jax.vmap(take)(first)) ** 2, axis=-1)
            best = _smallest_k(jnp.where(ok, exact, jnp.inf).reshape(m, n * g), k)
            if best.shape[1] < k:  # fewer rows in the store than k
                best = jnp.pad(best, ((0, 0), (0, k - best.shape[1])), constant_values=jnp.inf)
            tau = gmin[:, -1]
            err = 2.0 * (d + 4) * _U * (r2 + 2.0 * jnp.sqrt(qn * r2) + qn)
            certified = (n >= n_groups) | (best[:, -1] * (1.0 + 2.0 * (d + 4) * _U) <= tau + qn - err)
            return best, certified

        best, certified = rerank(q, qn, *top, per_group=False)

        def second_tier(q, qn, mins):  # near-ties: re-rank k + 32 groups before paying for a full scan
            v, gi2 = jax.lax.top_k(-mins, min(k + _EXTRA2, n_groups))
            b2, c2 = rerank(q, qn, -v, gi2, per_group=True)
            # the full scan only replaces what is still uncertified: the re-ranked Σ(q−r)² are
            # more accurate than its ‖q‖² − 2q·r + ‖r‖² where ‖q‖ ≫ the distances
            return jax.lax.cond(jnp.all(c2), lambda: (b2, c2), lambda: (jnp.where(c2[:, None], b2, full_scan(q)), c2))

        def second_tier_all():
            b2, c2 = second_tier(q, qn, table(slice(None)))
            return jnp.where(certified[:, None], best, b2), certified | c2

        def second_tier_few():
            # Only the few uncertified queries (rare: 0.15% on the structured benchmark data) go
            # on, compacted into a [_TIER2_ROWS] sub-block; re-running the whole block instead cost
            # ~10% on that data at 256-query blocks. Padding repeats an uncertified query (same result).
            bad = ~certified
            idx = jnp.nonzero(bad, size=s2, fill_value=jnp.argmax(bad))[0]
            b2, c2 = second_tier(q[idx], qn[idx], table(idx))
            return best.at[idx].set(b2), certified.at[idx].set(c2)

        s2 = min(qb, _TIER2_ROWS)
        n_bad = jnp.sum(~certified)
        branch = jnp.where(n_bad == 0, 0, jnp.where(n_bad <= s2, 1, 2))
        return jax.lax.switch(branch, [lambda: (best, certified), second_tier_few, second_tier_all])

    qb = max(1, min(query_block, queries.shape[0]))
    return _map_blocks(block, queries, qb)


def _map_blocks(fn: Callable[[Array], Any], x: Array, block: int) -> Any:
    """Applies ``fn`` to row blocks of ``x`` sequentially (lax.map), padding the last block."""
    n = x.shape[0]
    nb = -(-n // block)
    xp = jnp.pad(x, ((0, nb * block - n),) + ((0, 0),) * (x.ndim - 1))
    out = jax.lax.map(fn, xp.reshape((nb, block) + x.shape[1:]))
    return jax.tree.map(lambda o: o.reshape((nb * block,) + o.shape[2:])[:n], out)


# ----------------------------------------------------------------------------- encoders


def random_projection_params(key: Array, members: int, in_dim: int, out_dim: int, dtype=jnp.float32) -> Array:
    """[M, in_dim, out_dim] Gaussian projections scaled by 1/sqrt(out_dim) (Johnson–Lindenstrauss)."""
    return jax.random.normal(key, (members, in_dim, out_dim), dtype) / math.sqrt(out_dim)


def random_projection_apply(params: Array, x: Array) -> Array:
    """One member's projection: x [B, in_dim] @ params [in_dim, out_dim]."""
    return x @ params


def identity_params(key: Array, members: int, in_dim: int, out_dim: int, dtype=jnp.float32) -> Array:
    """For already-embedded datapoints: one member, no parameters used."""
    del key, out_dim
    return jnp.zeros((members, 0), dtype)


def identity_apply(params: Array, x: Array) -> Array:
    del params
    return x


def flax_encoder(module, example_input: Array) -> tuple[Callable, EncoderApply]:
    """Wraps a flax linen module as (init_params(key, members, in_dim, out_dim), apply).

    Each ensemble member gets its own initialization (vmapped ``module.init`` over split keys);
    ``out_dim`` must equal the module's output width.
    """

    def init_params(key, members, in_dim, out_dim, dtype=jnp.float32):
        del in_dim, out_dim, dtype
        keys = jax.random.split(key, members)
        return jax.vmap(lambda k: module.init(k, example_input))(keys)

    return init_params, module.apply


# ----------------------------------------------------------------------------- embedding novelty


@struct.dataclass
class EmbeddingNoveltyState:
    """Attributes:
    embeddings: [M, C, D] stored embeddings per ensemble member (ring buffer of capacity C).
    count: [] embeddings stored (≤ C once full: the oldest are overwritten).
    total: [] embeddings ever added.
    encoder_params: per-member encoder parameters (leading axis M).
    """

    embeddings: Array
    count: Array
    total: Array
    encoder_params: Any


class NoveltyScore(NamedTuple):
    """novelty [Q] (ensemble mean), spread [Q] (std across members), per_member [M, Q]."""

    novelty: Array
    spread: Array
    per_member: Array


def embedding_novelty(
    input_dim: int,
    *,
    k: int = 5,
    capacity: int = 100_000,
    members: int = 4,
    embed_dim: int = 32,
    chunk_size: int = 2048,
    query_block: int = 256,
    encoder: tuple[Callable, EncoderApply] | str = "random_projection",
    dtype=jnp.float32,
) -> "EmbeddingNoveltyTransform":
    """Builds the embedding-novelty transform.

    Args:
      input_dim: datapoint feature width.
      k: neighbours averaged (the seed's ``min(distances)`` is k = 1).
      capacity: stored embeddings (fixed buffer).
      members: ensemble size M.
      embed_dim: D per member.
      chunk_size, query_block: memory bounds of the exact search (working set
        query_block × (chunk_size + capacity/32) floats per member). The defaults (2048, 256:
        a 2 MiB distance tile) were fastest of those measured on CPU; GPUs want far larger.
      encoder: "random_projection", "identity" (inputs are embeddings already; M must be 1), or
        (init_params, apply) e.g. from :func:`flax_encoder`.

    Returns:
      NoveltyTransform with
        init(key) -> EmbeddingNoveltyState;
        update(state, x [B, input_dim]) -> state;
        score(state, x [Q, input_dim]) -> NoveltyScore (+inf novelty when the store is empty).
    """
    if k < 1 or capacity < 1 or members < 1:
        raise ValueError(f"k, capacity, members: must be >= 1, got {k}, {capacity}, {members}")
    if encoder == "random_projection":
        init_p, apply = random_projection_params, random_projection_apply
    elif encoder == "identity":
        if members != 1:
            raise ValueError(f"members: the identity encoder has one member, got {members}")
        init_p, apply, embed_dim = identity_params, identity_apply, input_dim
    elif isinstance(encoder, tuple) and len(encoder) == 2:
        init_p, apply = encoder
    else:
        raise ValueError(f"encoder: use 'random_projection', 'identity' or (init_params, apply), got {encoder!r}")

    def encode(params, x):
        return jax.vmap(lambda p: apply(p, x).astype(dtype))(params)  # [M, B, D]

    def init(key: Array) -> EmbeddingNoveltyState:
        params = init_p(key, members, input_dim, embed_dim, dtype)
        return EmbeddingNoveltyState(
            embeddings=jnp.zeros((members, capacity, embed_dim), dtype),
            count=jnp.asarray(0, jnp.int32),
            total=jnp.asarray(0, jnp.int32),
            encoder_params=params,
        )

    def update(state: EmbeddingNoveltyState, x: Array) -> EmbeddingNoveltyState:
        x = jnp.asarray(x, dtype)
        skipped = max(0, x.shape[0] - capacity)
        if skipped:  # a batch larger than the store: only its last `capacity` rows would survive
            x = x[skipped:]
            state = state.replace(total=state.total + skipped)
        emb = encode(state.encoder_params, x)
        b = emb.shape[1]
        idx = (state.total + jnp.arange(b)) % capacity
        embeddings = state.embeddings.at[:, idx].set(emb)
        return state.replace(
            embeddings=embeddings,
            count=jnp.minimum(state.count + b, capacity),
            total=state.total + b,
        )

    def knn(state: EmbeddingNoveltyState, x: Array) -> Array:
        """[M, Q, k] exact distances to the k nearest stored embeddings, per member."""
        emb = encode(state.encoder_params, jnp.asarray(x, dtype))
        # lax.map, not vmap: under vmap the search's per-block fallback cond would become a select
        sq = jax.lax.map(lambda qr: knn_sq_dists(qr[0], qr[1], state.count, k, chunk_size, query_block), (emb, state.embeddings))
        return jnp.sqrt(sq)

    def score(state: EmbeddingNoveltyState, x: Array) -> NoveltyScore:
        d = knn(state, x)
        finite = jnp.isfinite(d)
        n = jnp.sum(finite, axis=-1)
        per = jnp.where(n > 0, jnp.sum(jnp.where(finite, d, 0.0), -1) / jnp.maximum(n, 1), jnp.inf)
        mean = jnp.mean(per, axis=0)
        spread = jnp.where(jnp.isfinite(mean), jnp.std(jnp.where(jnp.isfinite(per), per, 0.0), axis=0), 0.0)
        return NoveltyScore(novelty=mean, spread=spread, per_member=per)

    return EmbeddingNoveltyTransform(init=init, update=update, score=score, knn=knn)


class EmbeddingNoveltyTransform(NamedTuple):
    """init, update, score as in NoveltyTransform, plus knn(state, x) -> [M, Q, k] distances."""

    init: Callable
    update: Callable
    score: Callable
    knn: Callable


# ----------------------------------------------------------------------------- coverage novelty


@struct.dataclass
class CoverageState:
    """Attributes: counts [table_size] int32 visits per bin; low, high [d] bin ranges."""

    counts: Array
    low: Array
    high: Array


_PRIMES = (73856093, 19349663, 83492791, 2654435761, 40503, 1000003, 998244353, 2147483647)


def coverage_novelty(dim: int, *, bins: int = 10, table_size: int = 1 << 16) -> NoveltyTransform:
    """Builds the state–action coverage transform: novelty = 1/(count+1) of the datapoint's bin.

    Each of the ``dim`` features (state and action concatenated) is cut into ``bins`` equal bins
    over [low, high] (values outside go to the edge bins). With bins**dim ≤ table_size the bin index
    is exact (a dense grid); otherwise bins are hashed into the table (collisions merge bins, which
    can only lower novelty).

    Returns:
      NoveltyTransform with
        init(low [d], high [d]) -> CoverageState;
        update(state, x [B, d]) -> state (counts each row);
        score(state, x [Q, d]) -> [Q] novelty in (0, 1].
    """
    dense = bins**dim <= table_size
    size = bins**dim if dense else table_size

    def bin_index(state: CoverageState, x: Array) -> Array:
        x = jnp.asarray(x, jnp.float32)
        width = jnp.maximum(state.high - state.low, 1e-12) / bins
        cell = jnp.clip(jnp.floor((x - state.low) / width), 0, bins - 1).astype(jnp.uint32)
        if dense:
            mult = jnp.asarray([bins**i for i in range(dim)], jnp.uint32)
            return jnp.sum(cell * mult, axis=-1).astype(jnp.int32)
        primes = jnp.asarray([_PRIMES[i % len(_PRIMES)] for i in range(dim)], jnp.uint32)
        h = jax.lax.reduce(cell * primes, jnp.uint32(0), jnp.bitwise_xor, (cell.ndim - 1,))
        return (h % jnp.uint32(size)).astype(jnp.int32)

    def init(low: Array, high: Array) -> CoverageState:
        low = jnp.broadcast_to(jnp.asarray(low, jnp.float32), (dim,))
        high = jnp.broadcast_to(jnp.asarray(high, jnp.float32), (dim,))
        return CoverageState(counts=jnp.zeros((size,), jnp.int32), low=low, high=high)

    def update(state: CoverageState, x: Array) -> CoverageState:
        return state.replace(counts=state.counts.at[bin_index(state, x)].add(1))

    def score(state: CoverageState, x: Array) -> Array:
        return 1.0 / (state.counts[bin_index(state, x)].astype(jnp.float32) + 1.0)

    return NoveltyTransform(init=init, update=update, score=score)


__all__ = [
    "NoveltyTransform",
    "EmbeddingNoveltyTransform",
    "NoveltyScore",
    "EmbeddingNoveltyState",
    "CoverageState",
    "knn_sq_dists",
    "knn_sq_dists_certified",
    "embedding_novelty",
    "coverage_novelty",
    "random_projection_params",
    "random_projection_apply",
    "flax_encoder",
]
