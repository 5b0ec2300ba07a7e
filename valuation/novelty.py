"""Novelty scores as (init, update, score) pure functions over a state pytree (optax style).

* :func:`embedding_novelty`: the mean Euclidean distance from a datapoint's embedding to its k
  nearest stored embeddings, exact (:mod:`valuation.knn`: a chunked screen whose result is
  certified against a float32 error bound, with a full scan where it cannot be). The store is a
  fixed-capacity buffer with a count, so shapes are static and one compiled function serves a
  growing store. Working memory is O(query_block × (chunk_size + capacity/32)), 31 MiB per block
  at 1M stored embeddings. Datapoints are embedded by an ensemble of encoders (random projections
  by default; any flax module can be plugged in) and the novelty is averaged over members, with
  their spread (std) reported.
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

from valuation.knn import knn_sq_dists, knn_sq_dists_certified  # noqa: F401  (public: re-exported)

Array = jax.Array
EncoderApply = Callable[[Any, Array], Array]  # (params, x [B, d_in]) -> [B, d_emb]


class NoveltyTransform(NamedTuple):
    """init(...) -> state; update(state, x) -> state; score(state, x) -> scores."""

    init: Callable[..., Any]
    update: Callable[..., Any]
    score: Callable[..., Any]


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
      k: neighbours averaged (k = 1: the distance to the nearest stored embedding).
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
    init_p, apply, embed_dim = _resolve_encoder(encoder, members, input_dim, embed_dim)

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
        return _mean_distance_score(knn(state, x))

    return EmbeddingNoveltyTransform(init=init, update=update, score=score, knn=knn)


def _resolve_encoder(encoder, members: int, input_dim: int, embed_dim: int) -> tuple[Callable, EncoderApply, int]:
    """:func:`embedding_novelty`'s ``encoder`` argument -> (init_params, apply, embedding width)."""
    if encoder == "random_projection":
        return random_projection_params, random_projection_apply, embed_dim
    if encoder == "identity":
        if members != 1:
            raise ValueError(f"members: the identity encoder has one member, got {members}")
        return identity_params, identity_apply, input_dim
    if isinstance(encoder, tuple) and len(encoder) == 2:
        return encoder[0], encoder[1], embed_dim
    raise ValueError(f"encoder: use 'random_projection', 'identity' or (init_params, apply), got {encoder!r}")


def _mean_distance_score(d: Array) -> NoveltyScore:
    """The k-NN distances [M, Q, k] (inf where fewer than k are stored) -> the members' mean distance
    (+inf with none stored), their ensemble mean and spread."""
    finite = jnp.isfinite(d)
    n = jnp.sum(finite, axis=-1)
    per = jnp.where(n > 0, jnp.sum(jnp.where(finite, d, 0.0), -1) / jnp.maximum(n, 1), jnp.inf)
    mean = jnp.mean(per, axis=0)
    spread = jnp.where(jnp.isfinite(mean), jnp.std(jnp.where(jnp.isfinite(per), per, 0.0), axis=0), 0.0)
    return NoveltyScore(novelty=mean, spread=spread, per_member=per)


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
