"""``vmap_robots``: ``jax.vmap`` over robots that stays clear of a LAPACK deadlock on small CPU hosts.

Why: MJX factorizes each robot's mass matrix and its Newton-solver Hessian with
``jax.scipy.linalg.cho_factor``. On the CPU backend a batched Cholesky is a LAPACK FFI call
(``lapack_spotrf_ffi``) that, once the batch is large enough, splits the batch over XLA's intra-op
thread pool and *waits* for the pieces. XLA runs independent thunks concurrently on the same pool,
so with two such factorizations in flight on a 2-thread pool both threads wait for work that no
thread is left to run: the program hangs with every thread idle (seen on this project's 2-core
machines with 32, 64 and 128 dishwashing robots). Splitting the robots into groups that each
stay under the kernel's parallel-work threshold and stepping the groups with ``jax.lax.map`` keeps
every factorization on its calling thread. On GPUs, and on CPUs with more threads, nothing changes.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax

# Robots per group on a small CPU pool. jaxlib's batched Cholesky runs on its calling thread while
# batch * n^3/3 < 200,000 (kMinWorkPerTask in jaxlib's lapack_kernels.cc); with n = nv = 35
# (dishwashing) that is at most 13 robots, and 8 keeps models up to nv = 42 inline. 32 robots
# deadlocked the main job; 64 deadlocked the trainer and brax.
CPU_GROUP = 8
SMALL_POOL = 2  # intra-op threads at or below which the deadlock can happen (2 concurrent factorizations)


def _pool_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def group_size(batch: int, backend: str | None = None, threads: int | None = None) -> int | None:
    """Robots per ``lax.map`` group for a batch of ``batch`` robots, or None to vmap them all at once."""
    backend = jax.default_backend() if backend is None else backend
    threads = _pool_threads() if threads is None else threads
    if backend != "cpu" or threads > SMALL_POOL or batch <= CPU_GROUP:
        return None
    for g in range(CPU_GROUP, 0, -1):  # the largest group that divides the batch
        if batch % g == 0:
            return g
    return None  # pragma: no cover - g = 1 always divides


def vmap_robots(fn: Callable, in_axes: Any = 0, group: int | None = -1) -> Callable:
    """Like ``jax.vmap(fn, in_axes)`` (in_axes entries 0 or None), stepping robots in groups on small CPUs.

    Args:
      fn: a per-robot function, e.g. ``env.step``.
      in_axes: as for ``jax.vmap``, a prefix tree of 0 (mapped over robots) and None (shared).
      group: robots per group; -1 = :func:`group_size` (automatic), None = plain vmap.

    Returns:
      A function with the same results as ``jax.vmap(fn, in_axes)``.
    """
    vfn = jax.vmap(fn, in_axes=in_axes)
    is_none = lambda x: x is None  # noqa: E731

    def call(*args):
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        mapped_leaves = [leaf for ax, a in zip(axes, args) for leaf in _mapped_leaves(ax, a)]
        if not mapped_leaves:
            return vfn(*args)
        n = mapped_leaves[0].shape[0]
        g = group_size(n) if group == -1 else group
        if g is None or g >= n or n % g:
            return vfn(*args)

        def split(ax, a):
            if ax is None:
                return None
            return jax.tree.map(lambda x: x.reshape((n // g, g) + x.shape[1:]), a)

        def keep(ax, a):
            return a if ax is None else None

        mapped = tuple(jax.tree.map(split, ax, a, is_leaf=is_none) for ax, a in zip(axes, args))
        shared = tuple(jax.tree.map(keep, ax, a, is_leaf=is_none) for ax, a in zip(axes, args))

        def body(xs):
            merged = tuple(jax.tree.map(lambda ax, m, s: s if ax is None else m, ax, m, s, is_leaf=is_none)
                           for ax, m, s in zip(axes, xs, shared))
            return vfn(*merged)

        out = jax.lax.map(body, mapped)
        return jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]), out)

    return call


def _mapped_leaves(ax, tree) -> list:
    """The leaves of ``tree`` that the prefix ``ax`` maps over (axis 0)."""
    out: list = []
    jax.tree.map(lambda a, sub: out.extend(jax.tree.leaves(sub)) if a is not None else None, ax, tree,
                 is_leaf=lambda x: x is None)
    return out
