"""``python -m envs.<task>``: roll out a registered env (scripted expert or random actions) and
optionally render an MP4 of it. One implementation for every task (envs/dishwashing.py and
envs/bricklaying.py call :func:`main` with their name)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jax
import mujoco
import numpy as np

CHUNK = 50  # control steps per jitted scan call (one compile, then a progress bar per chunk)


def main(name: str, argv: Sequence[str] | None = None, cameras: str = "overview, front") -> int:
    """Command-line entry of env ``name``; returns the exit status (2, with one stderr line, for a user's mistake)."""
    from vpjax.cli import run_main

    return run_main(lambda a: _main(name, a, cameras), argv, prog=f"python -m envs.{name}")


def _parse(name: str, argv: Sequence[str] | None, cameras: str):
    """The flags of ``python -m envs.<name>``, checked; returns (args, video width, video height)."""
    from vpjax.cli import ArgumentParser

    parser = ArgumentParser(
        prog=f"python -m envs.{name}",
        description=f"Roll out the {name} env (scripted expert or random actions) and optionally render a video.",
    )
    parser.add_argument("--expert", action="store_true", help="drive the robot with the scripted expert (default: random actions)")
    parser.add_argument("--render", metavar="OUT.mp4", default=None, help="write an MP4 (needs MUJOCO_GL=egl or osmesa and imageio-ffmpeg)")
    parser.add_argument("--seconds", type=float, default=None, help="simulated seconds to roll out (default: one episode)")
    parser.add_argument("--camera", default="overview", help=f"camera name ({cameras})")
    parser.add_argument("--fps", type=int, default=25, help="video frames per simulated second")
    parser.add_argument("--size", default="480x360", help="video WxH")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        w, h = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WxH like 480x360, got {args.size!r}")
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds: must be > 0, got {args.seconds}")
    if args.fps < 1:
        parser.error(f"--fps: must be >= 1, got {args.fps}")
    if args.render and not Path(args.render).resolve().parent.is_dir():
        parser.error(f"--render {args.render}: folder {Path(args.render).parent} does not exist")
    return args, w, h


def _main(name: str, argv: Sequence[str] | None, cameras: str) -> int:
    from vpjax.cli import UserError

    args, w, h = _parse(name, argv, cameras)

    import envs
    from envs.experts import make_expert

    env = envs.make(name)
    if args.render and mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_CAMERA, args.camera) < 0:
        raise UserError(f"--camera {args.camera!r}: no such camera (known: {cameras})")
    n = env.episode_length if args.seconds is None else int(round(args.seconds / env.dt))
    policy = make_expert(env) if args.expert else None
    state, qpos, done = _rollout(env, policy, n, jax.random.PRNGKey(args.seed))
    m = state.metrics
    print(
        f"simulated {done * env.dt:.1f} s: units {float(m['units']):.0f}, errors {float(m['errors']):.0f}, "
        f"attempts {float(m['attempts']):.0f}, MP {float(m['mp']):.1f}/h "
        f"(parity {float(m['productivity_parity']):.2f}), error rate {float(m['error_rate']):.3f}"
    )
    if args.render:
        n_frames = _render(env, qpos, args.render, args.camera, args.fps, w, h)
        print(f"wrote {args.render} ({n_frames} frames)")
    return 0


def _rollout(env, policy, n: int, key):
    """``n`` control steps (rounded up to whole chunks of :data:`CHUNK`) of ``policy``, or uniform random
    actions when None, from a reset; returns (final state, qpos [n, nq], steps simulated)."""
    from rich.progress import Progress

    key, k_reset = jax.random.split(key)
    state = jax.jit(env.reset)(k_reset)

    @jax.jit
    def run(state, key):
        def body(s, k):
            a = policy(s, env.default_params) if policy is not None else jax.random.uniform(k, (env.action_size,), minval=-1, maxval=1)
            s = env.step(s, a)
            return s, s.pipeline_state.qpos

        return jax.lax.scan(body, state, jax.random.split(key, CHUNK))

    qs, done = [], 0
    with Progress() as progress:
        task = progress.add_task("rollout (first chunk compiles)", total=n)
        while done < n:
            key, k = jax.random.split(key)
            state, q = run(state, k)
            qs.append(np.asarray(q))
            done += CHUNK
            progress.update(task, advance=CHUNK)
    return state, np.concatenate(qs)[:n], done


def _render(env, qpos: np.ndarray, out: str, camera: str, fps: int, w: int, h: int) -> int:
    """Writes the MP4 ``out`` of ``qpos`` seen from ``camera`` at about ``fps``; returns its frame count."""
    import imageio
    from rich.progress import Progress

    every = max(1, int(round(1.0 / (fps * env.dt))))
    frames = []
    d = mujoco.MjData(env.mj_model)
    todo = qpos[::every]
    with mujoco.Renderer(env.mj_model, height=h, width=w) as renderer, Progress() as progress:
        task = progress.add_task("rendering", total=len(todo))
        for q in todo:
            d.qpos[:] = q
            mujoco.mj_forward(env.mj_model, d)
            renderer.update_scene(d, camera=camera)
            frames.append(renderer.render().copy())
            progress.update(task, advance=1)
    imageio.mimwrite(out, frames, fps=int(round(1.0 / (every * env.dt))))
    return len(frames)
