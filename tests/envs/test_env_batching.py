"""envs.batching.vmap_robots equals jax.vmap, with and without grouping."""

import jax
import jax.numpy as jnp
import numpy as np

from envs import batching


def _fn(state, action, params):
    return {"x": state["x"] * params["scale"] + action.sum(), "n": state["n"] + 1}, jnp.linalg.cholesky(
        params["m"] + jnp.eye(3) * (1.0 + state["x"][0] ** 2))


def test_grouped_equals_vmap():
    n = 12
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    state = {"x": jax.random.normal(k1, (n, 3)), "n": jnp.arange(n)}
    action = jax.random.normal(k2, (n, 2))
    params = {"scale": jnp.linspace(0.5, 1.5, n), "m": jnp.eye(3)}
    axes = (0, 0, {"scale": 0, "m": None})
    ref = jax.vmap(_fn, in_axes=axes)(state, action, params)
    for g in (None, 3, 4, 6, 5):  # 5 does not divide 12: plain vmap
        got = jax.jit(batching.vmap_robots(_fn, axes, group=g))(state, action, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, ref)


def test_group_size_rule():
    assert batching.group_size(64, backend="gpu", threads=2) is None
    assert batching.group_size(64, backend="cpu", threads=16) is None
    assert batching.group_size(8, backend="cpu", threads=2) is None
    assert batching.group_size(32, backend="cpu", threads=2) == 8
    assert batching.group_size(96, backend="cpu", threads=1) == 8
    assert batching.group_size(100, backend="cpu", threads=2) == 5
    # a group keeps jaxlib's batched Cholesky of a 42x42 matrix on its calling thread
    assert batching.CPU_GROUP * 42 ** 3 // 3 < 200_000
