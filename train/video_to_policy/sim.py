"""Task adapters (env + scripted expert + proprioception + renderer) and demonstration collection.

``get_task("dishwashing")`` wraps ``envs.make("dishwashing")``, the scripted expert of
``envs.experts`` and a MuJoCo offscreen renderer; ``get_task("dishwashing_reduced")`` is the same
scene with the documented CPU-sized settings of :data:`REDUCED_DISHWASHING` (a 2 s washing time, so
the expert finishes a dish every ~8 s instead of ~46 s); ``get_task("point")`` is the reduced task of
:mod:`.toy` (pure-JAX renderer) used by the fast tests. Everything downstream (collection, training,
evaluation) only talks to a :class:`Task`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import records as R
from . import toy


@dataclasses.dataclass
class Task:
    """What the pipeline needs from a task.

    Attributes:
      name: task name (stored in records and checkpoints).
      env: the contract env (reset/step, observation_size, action_size, dt, episode_length, default_params).
      expert: ``expert(state, key, params) -> action [A]`` (jittable, one robot).
      proprio: ``proprio(state) -> [P]`` (jittable, one robot).
      render: ``render(states, size) -> uint8 [N, size, size, 3]`` for a batch of N states (host side).
      proprio_size: P.
    """

    name: str
    env: Any
    expert: Callable
    proprio: Callable
    render: Callable
    proprio_size: int
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def action_size(self) -> int:
        return int(self.env.action_size)


TASKS = ("point", "dishwashing", "dishwashing_reduced")

#: "Reduced dishwashing": the full dishwashing scene, robot, expert and counters, with a washing time of
#: 2 s instead of 40 s, so that the scripted expert racks a washed dish every ~200 control steps (8 s)
#: and a 400-step (16 s) episode holds two complete units. The human reference is rescaled the same way:
#: the dishwashing config's MPₕ = 60 dishes/h is 60 s a dish, 40 s of it washing, i.e. 20 s of handling; a human
#: doing the reduced task takes 20 s + washing_time = 22 s a dish, MPₕ = 3600/22 = 163.6 dishes/h. The
#: price per dish is rescaled so that p·MPₕ = wₕ = $18/h as in configs/dishwashing.yaml (p = $0.11); the damage cost
#: ($1/error) and the parity tolerances are unchanged.
REDUCED_DISHWASHING = {"washing_time": 2.0, "human_handling_s": 20.0, "episode_length": 400, "size": 64}


def reduced_dishwashing_overrides(washing_time: float = REDUCED_DISHWASHING["washing_time"],
                                  human_handling_s: float = REDUCED_DISHWASHING["human_handling_s"]) -> dict:
    """``envs.make("dishwashing", **overrides)`` keywords of the reduced task (see :data:`REDUCED_DISHWASHING`)."""
    if washing_time <= 0 or human_handling_s <= 0:
        raise ValueError(f"reduced dishwashing: washing_time={washing_time} and human_handling_s={human_handling_s} "
                         "must be > 0")
    human_mp = 3600.0 / (human_handling_s + washing_time)
    return {"washing_time": float(washing_time), "econ": {"human_mp": human_mp, "price_per_unit": 18.0 / human_mp}}


def get_task(name: str, episode_length: int | None = None, **env_kwargs) -> Task:
    """Builds the adapter for ``name``; an unknown name fails listing the known ones."""
    if name == "point":
        env = toy.PointDeliver(episode_length=episode_length or 40)
        render_j = jax.jit(jax.vmap(toy.render, in_axes=(0, None)), static_argnums=1)
        return Task(name, env, toy.expert, env.proprio, lambda s, size: np.asarray(render_j(s, size)),
                    env.proprio_size)
    if name == "dishwashing":
        return _dishwashing(episode_length, **env_kwargs)
    if name == "dishwashing_reduced":
        kw = {**reduced_dishwashing_overrides(), **env_kwargs}
        return _dishwashing(episode_length or REDUCED_DISHWASHING["episode_length"], task_name=name, **kw)
    raise ValueError(f"task {name!r}: unknown; known tasks: {TASKS}")


class FrameRenderer:
    """MuJoCo offscreen renderer of one model, kept open across calls, without shadows and reflections.

    ``envs`` ``env.render`` opens a new ``mujoco.Renderer`` per call (~0.4 s) and draws shadows; on this
    machine's software EGL the 2048² shadow map makes a 64×64 frame cost ~200 ms, ~20 ms without it.
    Evaluation renders N frames at every control step, so both costs matter. Frames are what a camera
    sees (the same scene, lighting without cast shadows); collection and evaluation share this path.
    """

    def __init__(self, model, size: int, camera: str):
        import mujoco

        self._mujoco, self.model, self.camera = mujoco, model, camera
        self.data = mujoco.MjData(model)
        self.renderer = mujoco.Renderer(model, height=size, width=size)
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            self.renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        self._flags = np.array(self.renderer.scene.flags)
        import atexit

        atexit.register(self.renderer.close)  # close the GL context before interpreter teardown

    def __call__(self, qpos: np.ndarray) -> np.ndarray:
        """qpos [N, nq] -> uint8 [N, size, size, 3]."""
        mj, out = self._mujoco, []
        for q in np.asarray(qpos, np.float64).reshape(-1, self.model.nq):
            self.data.qpos[:] = q
            mj.mj_forward(self.model, self.data)
            self.renderer.update_scene(self.data, camera=self.camera)
            self.renderer.scene.flags[:] = self._flags  # update_scene may reset the flags to the model's
            out.append(self.renderer.render().copy())
        return np.stack(out)


def _dishwashing(episode_length: int | None, camera: str = "overview", task_name: str = "dishwashing",
                 **env_kwargs) -> Task:
    try:
        import envs
        from envs import experts
    except ImportError as e:  # pragma: no cover - depends on the env engineer's package
        raise RuntimeError(f"task 'dishwashing' needs envs.make and envs.experts: {e}") from e
    kw = dict(env_kwargs)
    if episode_length is not None:
        kw["episode_length"] = int(episode_length)
    env = envs.make("dishwashing", **kw)
    policy = experts.make_expert(env)
    qpos_idx = jnp.asarray(env.robot.robot_qpos)

    def expert(state, key, params):
        del key  # the scripted expert is deterministic; scenes differ by their reset seed
        return policy(state, params)

    def proprio(state):
        """Robot joint angles (waist, arms, fingers): what a pose estimator would read off the video."""
        return state.pipeline_state.qpos[qpos_idx].astype(jnp.float32)

    renderers = {}

    def render(states, size):
        # states carry a leading batch/time axis; one open renderer per frame size (set MUJOCO_GL=egl)
        if size not in renderers:
            renderers[size] = FrameRenderer(env.mj_model, size, camera)
        return renderers[size](np.asarray(states.pipeline_state.qpos))

    return Task(task_name, env, expert, proprio, render, int(qpos_idx.shape[0]))


def make_rollout(task: Task, steps: int):
    """Jitted batched rollout of the expert, optionally perturbed (play data).

    Returns ``rollout(keys [N], noise [N], random_frac [N], params) -> (states [T+1, N], actions [T, N, A],
    final metrics [N])``: each robot follows ``expert + noise·N(0, 1)`` and, with probability
    ``random_frac`` per step, a uniform random action instead (so the IDM sees actions off the expert's
    manifold).
    """
    if ("rollout", steps) in task._cache:  # compiled once per task and length (compiles are slow on CPU)
        return task._cache[("rollout", steps)]
    env = task.env

    def one(key, noise, random_frac, params):
        k_reset, k_run = jax.random.split(key)
        s0 = env.reset(k_reset, params)

        def body(s, k):
            k_e, k_n, k_r, k_u = jax.random.split(k, 4)
            a = task.expert(s, k_e, params)
            a = a + noise * jax.random.normal(k_n, a.shape)
            rand = jax.random.uniform(k_u, a.shape, minval=-1.0, maxval=1.0)
            a = jnp.clip(jnp.where(jax.random.uniform(k_r) < random_frac, rand, a), -1.0, 1.0)
            s2 = env.step(s, a, params)
            return s2, (s2, a)

        last, (traj, acts) = jax.lax.scan(body, s0, jax.random.split(k_run, steps))
        states = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), s0, traj)
        return states, acts, last.metrics

    fn = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None), out_axes=(1, 1, 0)))
    task._cache[("rollout", steps)] = fn
    return fn


def collect(task: Task, seeds, kind: str = "demo", size: int = 64, steps: int | None = None,
            noise: float = 0.0, random_frac: float = 0.0, params=None, progress=None) -> list[R.Record]:
    """Runs the (perturbed) expert for each seed and renders the episodes into records.

    Args:
      task: the adapter.
      seeds: episode seeds (ints); each gives a different randomized scene.
      kind: "demo" (expert video) or "play" (perturbed, labelled robot data).
      size: frame width = height in pixels.
      steps: actions per episode (default: the env's episode length).
      noise, random_frac: perturbation of the expert (see :func:`make_rollout`); play data uses both.
      params: EnvParams (default: the env's).
      progress: optional callable(i) after each rendered episode.

    Returns:
      list of :class:`records.Record`.
    """
    env = task.env
    steps = int(steps or env.episode_length)
    params = env.default_params if params is None else params
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    rollout = make_rollout(task, steps)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    noise_v = jnp.full((n,), noise, jnp.float32)
    if kind == "play":  # vary the perturbation across play episodes for coverage
        noise_v = noise_v * jnp.linspace(0.5, 1.5, n)
    states, acts, final = rollout(keys, noise_v, jnp.full((n,), random_frac, jnp.float32), params)
    proprio = jax.vmap(jax.vmap(task.proprio))(states)
    obs, acts, proprio = np.asarray(states.obs), np.asarray(acts), np.asarray(proprio)
    final = jax.tree.map(np.asarray, final)
    out = []
    for i, seed in enumerate(seeds):
        s_i = jax.tree.map(lambda x: x[:, i], states)
        frames = task.render(s_i, size)
        summary = {k: float(final[k][i]) for k in ("units", "errors", "attempts", "mp", "error_rate",
                                                    "implied_wage", "productivity_parity", "wage_parity")}
        out.append(R.Record(frames=frames, timestamps=np.arange(steps + 1, dtype=np.float32) * env.dt,
                            proprio=proprio[:, i], actions=acts[:, i], states=obs[:, i], task=task.name, seed=seed,
                            kind=kind, summary=summary))
        if progress is not None:
            progress(i)
    return out
