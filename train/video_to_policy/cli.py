"""``python -m train.video_to_policy collect|idm|bc|diffusion|finetune|evaluate|value|chain``.

The small CPU chain (documented settings; the reduced ``point`` task)::

    python -m train.video_to_policy chain --task point --out runs/v2p_point

or step by step::

    python -m train.video_to_policy collect  --task point --out runs/v2p --demos 16 --play 24
    python -m train.video_to_policy idm      --data runs/v2p
    python -m train.video_to_policy bc       --data runs/v2p --labels idm
    python -m train.video_to_policy bc       --data runs/v2p --labels true
    python -m train.video_to_policy diffusion --data runs/v2p --labels idm
    python -m train.video_to_policy finetune --data runs/v2p
    python -m train.video_to_policy evaluate --data runs/v2p
    python -m train.video_to_policy value    --data runs/v2p

Checkpoints go to ``<data>/<name>/`` by default (``idm``, ``bc_idm``, ``bc_true``, ``diffusion``, ``ppo``).

Reduced dishwashing (``--task dishwashing_reduced``: the dishwashing scene with a 2 s washing time,
400-step = 16 s episodes, 64x64 frames, human reference MPₕ = 3600/(20 + 2) dishes/h at p = $0.11; see
``sim.REDUCED_DISHWASHING``), the documented CPU run (timing and results:
``benchmarks/results/video_to_policy_dishwashing_cpu.md``)::

    MUJOCO_GL=egl python -m train.video_to_policy chain --task dishwashing_reduced --out runs/v2p_dish \\
        --demos 16 --play 16 --noise 0.1 --random-frac 0.05 --idm-steps 600 --bc-steps 600 \\
        --diffusion-steps 1000 --ppo-iterations 40 --episodes 8

(play noise 0.1 and 5 % random actions: with the point task's 0.3 and 20 % the perturbed expert never
holds a dish, so the IDM never sees a closed hand and fails on the demos, R² < 0.)

Rendering uses MuJoCo's offscreen renderer; ``MUJOCO_GL`` defaults to ``egl`` (set before MuJoCo is
imported), with shadows off.

The steps themselves are typed functions in :mod:`.pipeline`; this module only parses flags into
their configs (:mod:`.steps`).
"""

from __future__ import annotations

import os

# MuJoCo picks its GL backend when it is first imported: offscreen EGL unless the caller chose one
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import sys
from typing import Sequence

from vpjax.cli import ArgumentParser, UserError, run_main

from . import bc as bc_mod
from . import common
from . import diffusion as dif
from . import idm as idm_mod
from . import pipeline as P
from . import sim
from .steps import FINETUNE_PPO


def _console():
    from rich.console import Console

    return Console(width=max(160, Console().width))


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 64,64")


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m train.video_to_policy", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = p.add_subparsers(dest="command", required=True)

    def base(name, help_, data=True):
        q = sp.add_parser(name, help=help_, description=help_)
        if data:
            q.add_argument("--data", required=True, help="dataset folder written by `collect`")
        q.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
        q.add_argument("--quiet", action="store_true", help="no progress bars")
        return q

    _add_collect(base)
    _add_learners(base)
    _add_finetune(base)
    _add_evaluate_value(base)
    _add_chain(base)
    return p


def _add_collect(base) -> None:
    c = base("collect", "run the scripted expert (demos) and the perturbed expert (play) and render them", data=False)
    c.add_argument("--task", default="point", choices=sim.TASKS, help="task (default point: the reduced CPU task)")
    c.add_argument("--out", required=True, help="dataset folder to write (records merge into an existing one)")
    c.add_argument("--demos", type=int, default=16, help="expert demonstrations (default 16)")
    c.add_argument("--play", type=int, default=24, help="play episodes for the IDM (default 24)")
    c.add_argument("--size", type=int, default=None, help="frame size in pixels (default 32 point, 64 dishwashing)")
    c.add_argument("--steps", type=int, default=None, help="steps per episode (default 40 point, 100 dishwashing)")
    c.add_argument("--noise", type=float, default=0.3, help="play: Gaussian action noise on the expert (default 0.3)")
    c.add_argument("--random-frac", type=float, default=0.2, help="play: fraction of uniform random actions (0.2)")



def _training(q, steps, lr=1e-3):
    q.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
    q.add_argument("--batch-size", type=int, default=64, help="windows per batch (default 64)")
    q.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr})")
    q.add_argument("--channels", type=_ints, default=(16, 32), help="encoder conv widths (default 16,32)")


def _demo_policy(base, name: str, help: str, steps: int):
    """A subcommand that trains a policy on the demos: the training flags, --labels and --idm."""
    q = base(name, help)
    _training(q, steps)
    q.add_argument("--labels", choices=("idm", "true"), default="idm", help="action labels (default idm)")
    q.add_argument("--idm", default=None, help="IDM checkpoint (default <data>/idm)")
    return q


def _add_learners(base) -> None:
    i = base("idm", "train the inverse dynamics model on play data; label the demos; report held-out accuracy")
    _training(i, 400)
    i.add_argument("--hidden", type=_ints, default=(256, 256), help="head widths (default 256,256)")
    i.add_argument("--no-proprio", action="store_true", help="frames only (no proprioception)")
    i.add_argument("--out", default=None, help="checkpoint folder (default <data>/idm)")

    b = _demo_policy(base, "bc", "behaviour cloning from the demos (IDM labels or the hidden true actions)", 400)
    b.add_argument("--hidden", type=_ints, default=(256, 256), help="head widths (default 256,256)")
    b.add_argument("--no-vision", action="store_true", help="proprioception only")
    b.add_argument("--no-proprio", action="store_true", help="frames only")
    b.add_argument("--out", default=None, help="checkpoint folder (default <data>/bc_<labels>)")

    d = _demo_policy(base, "diffusion", "diffusion policy with action chunks (DDPM training, DDIM sampling)", 600)
    d.add_argument("--obs-horizon", type=int, default=2)
    d.add_argument("--pred-horizon", type=int, default=16)
    d.add_argument("--action-horizon", type=int, default=8, help="executed actions per chunk (default 8)")
    d.add_argument("--ddim-steps", type=int, default=10)
    d.add_argument("--schedule", choices=dif.SCHEDULES, default="cosine")
    d.add_argument("--width", type=int, default=64, help="temporal conv channels (default 64)")
    d.add_argument("--out", default=None, help="checkpoint folder (default <data>/diffusion)")



def _add_finetune(base) -> None:
    f = base("finetune", "distill the cloned policy into PPO's network and fine-tune it with the economic reward")
    f.add_argument("--bc", default=None, help="BC checkpoint to start from (default <data>/bc_idm)")
    fp = FINETUNE_PPO
    f.add_argument("--num-envs", type=int, default=fp.num_envs)
    f.add_argument("--unroll", type=int, default=fp.unroll_length)
    f.add_argument("--minibatches", type=int, default=fp.num_minibatches)
    f.add_argument("--epochs", type=int, default=fp.update_epochs)
    f.add_argument("--iterations", type=int, default=40, help="PPO iterations (default 40)")
    f.add_argument("--eval-every", type=int, default=fp.eval_every)
    f.add_argument("--eval-envs", type=int, default=fp.num_eval_envs)
    f.add_argument("--lr", type=float, default=fp.learning_rate,
                   help=f"PPO learning rate (default {fp.learning_rate}, gentle on a cloned init)")
    f.add_argument("--entropy-cost", type=float, default=fp.entropy_cost)
    f.add_argument("--policy-hidden", type=_ints, default=fp.policy_hidden)
    f.add_argument("--value-hidden", type=_ints, default=fp.value_hidden)
    f.add_argument("--distill-episodes", type=int, default=8)
    f.add_argument("--distill-steps", type=int, default=400)
    f.add_argument("--init-std", type=float, default=0.3,
                   help="std (pre-tanh) the distilled policy starts PPO with (default 0.3)")
    f.add_argument("--critic-warmup", type=int, default=0,
                   help="chunks of --eval-every iterations that train only the critic first (default 0)")
    f.add_argument("--no-freeze-norm", action="store_true",
                   help="let PPO move the observation statistics the distilled policy was fitted with")
    f.add_argument("--out", default=None, help="checkpoint folder (default <data>/ppo)")



def _add_evaluate_value(base) -> None:
    e = base("evaluate", "MPᵣ, e, ŵᵣ and parities of the expert and every trained policy; table + plot")
    e.set_defaults(seed=10_000)
    e.add_argument("--episodes", type=int, default=8, help="evaluation episodes per policy (default 8)")
    e.add_argument("--bc-true", default=None)
    e.add_argument("--bc-idm", default=None)
    e.add_argument("--diffusion", default=None)
    e.add_argument("--ppo", default=None)
    e.add_argument("--random", action="store_true", help="add a uniform random policy row")
    e.add_argument("--distilled", action="store_true", help="add the distilled PPO initialization row")
    e.add_argument("--out-md", default=None)
    e.add_argument("--out-png", default=None)

    v = base("value", "per-demonstration embeddings -> valuation engine -> data_value.csv")
    v.add_argument("--idm", default=None, help="IDM checkpoint (default <data>/idm)")
    v.add_argument("--out", default=None, help="CSV path (default <data>/data_value.csv)")
    v.add_argument("--history", default=None, help="history CSV (novelty_score, causal_gain, realized_mpl_gain)")
    v.add_argument("--sharing", choices=("shared", "withheld"), default="withheld",
                   help="sharing status of the demos (default withheld: the premium is quoted)")
    v.add_argument("--realized", default=None, help="realized gains CSV (datapoint_id, realized_mpl) for true-up")



def _add_chain(base) -> None:
    ch = base("chain", "collect -> idm -> bc -> diffusion -> finetune -> evaluate -> value (small settings)", data=False)
    ch.add_argument("--task", default="point", choices=sim.TASKS)
    ch.add_argument("--out", required=True)
    ch.add_argument("--reuse", action="store_true", help="reuse an existing dataset in --out")
    ch.add_argument("--demos", type=int, default=16)
    ch.add_argument("--play", type=int, default=24)
    ch.add_argument("--size", type=int, default=None)
    ch.add_argument("--steps", type=int, default=None)
    ch.add_argument("--noise", type=float, default=0.3, help="play: Gaussian action noise (default 0.3)")
    ch.add_argument("--random-frac", type=float, default=0.2, help="play: fraction of random actions (default 0.2)")
    ch.add_argument("--idm-steps", type=int, default=400)
    ch.add_argument("--bc-steps", type=int, default=400)
    ch.add_argument("--diffusion-steps", type=int, default=600, help="0 skips the diffusion policy")
    ch.add_argument("--ppo-iterations", type=int, default=40, help="0 skips PPO fine-tuning")
    ch.add_argument("--episodes", type=int, default=8)


# ----------------------------------------------------------------------------- flags -> typed step configs


def _collect(a) -> P.CollectConfig:
    return P.CollectConfig(task=a.task, out=a.out, demos=a.demos, play=a.play, size=a.size, steps=a.steps,
                           noise=a.noise, random_frac=a.random_frac, seed=a.seed, quiet=a.quiet)


def _idm(a) -> P.IDMStep:
    model = idm_mod.IDMConfig(steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, use_proprio=not a.no_proprio,
                              channels=a.channels, hidden=a.hidden)
    return P.IDMStep(a.data, model, seed=a.seed, out=a.out, quiet=a.quiet)


def _bc(a) -> P.BCStep:
    model = bc_mod.BCConfig(steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, use_vision=not a.no_vision,
                            use_proprio=not a.no_proprio, channels=a.channels, hidden=a.hidden)
    return P.BCStep(a.data, model, labels=a.labels, idm_path=a.idm, seed=a.seed, out=a.out, quiet=a.quiet)


def _diffusion(a) -> P.DiffusionStep:
    model = dif.DiffusionConfig(steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, obs_horizon=a.obs_horizon,
                                pred_horizon=a.pred_horizon, action_horizon=a.action_horizon,
                                ddim_steps=a.ddim_steps, schedule=a.schedule, enc_channels=a.channels,
                                channels=a.width)
    return P.DiffusionStep(a.data, model, labels=a.labels, idm_path=a.idm, seed=a.seed, out=a.out, quiet=a.quiet)


def _finetune(a) -> P.FinetuneStep:
    ppo = FINETUNE_PPO.replace(num_envs=a.num_envs, unroll_length=a.unroll, num_minibatches=a.minibatches,
                                 update_epochs=a.epochs, eval_every=a.eval_every, num_eval_envs=a.eval_envs,
                                 learning_rate=a.lr, entropy_cost=a.entropy_cost, policy_hidden=a.policy_hidden,
                                 value_hidden=a.value_hidden)
    return P.FinetuneStep(a.data, bc=a.bc, ppo=ppo, iterations=a.iterations, distill_episodes=a.distill_episodes,
                          distill_steps=a.distill_steps, init_std=a.init_std, critic_warmup=a.critic_warmup,
                          freeze_norm=not a.no_freeze_norm, seed=a.seed, out=a.out, quiet=a.quiet)


def _evaluate(a) -> P.EvaluateStep:
    return P.EvaluateStep(a.data, episodes=a.episodes, bc_true=a.bc_true, bc_idm=a.bc_idm, diffusion=a.diffusion,
                          ppo=a.ppo, random=a.random, distilled=a.distilled, out_md=a.out_md, out_png=a.out_png,
                          seed=a.seed, quiet=a.quiet)


def _value(a) -> P.ValueStep:
    return P.ValueStep(a.data, idm_path=a.idm, out=a.out, history=a.history, sharing=a.sharing,
                       realized=a.realized, seed=a.seed, quiet=a.quiet)


def _chain(a) -> P.ChainConfig:
    collect = P.CollectConfig(task=a.task, out=a.out, demos=a.demos, play=a.play, size=a.size, steps=a.steps,
                              noise=a.noise, random_frac=a.random_frac, seed=a.seed, quiet=a.quiet)
    return P.ChainConfig(collect, reuse=a.reuse, idm_steps=a.idm_steps, bc_steps=a.bc_steps,
                         diffusion_steps=a.diffusion_steps, ppo_iterations=a.ppo_iterations, episodes=a.episodes)


COMMANDS = {"collect": (_collect, P.collect), "idm": (_idm, P.idm), "bc": (_bc, P.bc),
            "diffusion": (_diffusion, P.diffusion), "finetune": (_finetune, P.finetune),
            "evaluate": (_evaluate, P.evaluate), "value": (_value, P.value), "chain": (_chain, P.chain)}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    con = _console()
    to_config, step = COMMANDS[args.command]
    try:
        step(to_config(args), lambda m: con.print(m, markup=False, highlight=False))
    except (FileNotFoundError, common.CheckpointError) as e:  # a dataset or checkpoint the user named
        raise UserError(str(e)) from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m train.video_to_policy``; a user's mistake is one stderr line and status 2."""
    return run_main(_main, argv, prog="python -m train.video_to_policy")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
