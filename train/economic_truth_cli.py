"""``python -m train.economic_truth``: the economic-truth study (train/economic_truth.py) from the shell.

Example (the point task, 3-7 minutes on 2 CPU cores; the README has the dishwashing commands)::

    python -m train.economic_truth --env envs.point:PointDeliver --out runs/truth_point

Writes into ``--out``: ``realized_mpl.csv`` (datapoint_id, realized_mpl: the measured gains),
``premium_quotes.csv`` (the cross-fitted quotes), ``trueup_summary.csv`` (``python -m
valuation.reconcile`` on the two), ``data_value.csv``, ``data_valuation.pdf`` (``valuation.report``),
``study.csv`` (every datapoint: kind, features, realized and predicted gain, tier, true-up) and
``economic_truth.md`` / ``.png`` (the scores against their goals, the removal curve).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from vpjax.cli import ArgumentParser

    p = ArgumentParser(prog="python -m train.economic_truth", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None,
                   help="registered task or MODULE:FACTORY (default envs.point:PointDeliver, or the --init run's env)")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE", help="env constructor/param override")
    p.add_argument("--subsets", type=int, default=64, help="students per retraining call (default 64)")
    p.add_argument("--sgd-steps", type=int, default=300, help="Adam steps per student (default 300)")
    p.add_argument("--eval-envs", type=int, default=32, help="held-out robots per student (default 32)")
    p.add_argument("--steps", type=int, default=None, help="control steps per demonstration (default: the episode)")
    p.add_argument("--learning-rate", type=float, default=3e-3, help="students' Adam step size (default 3e-3)")
    p.add_argument("--warm-start", type=int, default=0, metavar="ROUNDS",
                   help="first train a student by this many DAgger rounds; every retrained student is it, "
                        "fine-tuned on its subset (default 0: fresh MLPs; the MJX tasks need it, or every MPr is 0)")
    p.add_argument("--init", default=None, metavar="RUN",
                   help="every retrained student is this trained policy (a python -m train run folder or its "
                        "policy.msgpack, e.g. benchmarks/results/policy_dishwashing), fine-tuned on its subset; its "
                        "visited states, labelled by the expert, are the base rows (instead of --warm-start)")
    p.add_argument("--seeds", type=int, default=0,
                   help="training seeds shared by the subsets (common random numbers; the split halves are the "
                        "even and the odd seeds; default 0: each student its own seed)")
    p.add_argument("--causal", choices=("ensemble", "student"), default="ensemble",
                   help="the value model's causal_gain: TracIn over a BC ensemble on the pool (default), or on the "
                        "warm-start/--init student itself, on the states it visits")
    p.add_argument("--removal", default="0.1,0.2,0.3", help="fractions removed by predicted value (default 0.1,0.2,0.3)")
    p.add_argument("--repeats", type=int, default=2, help="retrains of each removal and leave-one-out row (default 2)")
    p.add_argument("--loo", type=int, default=4, help="datapoints checked by leave-one-out (default 4)")
    p.add_argument("--folds", type=int, default=4, help="cross-fitting folds of the value model (default 4)")
    p.add_argument("--pool", default=None, metavar="KIND=N,...",
                   help="demonstrations of each kind (default clean=12,slips=10,noisy=4,reversed=2,rushed=3,"
                        "duplicate=4,shifted=5,correction=4: train.economic_truth.DEFAULT_POOL)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pool, the retrains and the warm start (default 0)")
    p.add_argument("--config", default="dishwashing", help="task config for the valuation settings (default dishwashing)")
    p.add_argument("--out", required=True, help="folder to write (created)")
    p.add_argument("--record", default=None, metavar="STEM",
                   help="also write STEM.md and STEM.png (e.g. benchmarks/results/economic_truth_point)")
    return p


def parse_pool(text: str) -> tuple:
    """``clean=16,noisy=6`` -> (("clean", 16), ("noisy", 6)); a bad entry raises UserError naming ``--pool``."""
    from vpjax.cli import UserError

    from .datamodels import KINDS

    pool = []
    for item in text.split(","):
        kind, _, n = item.partition("=")
        kind = kind.strip()
        if kind not in KINDS or not n.strip().isdigit() or int(n) < 1:
            raise UserError(f"--pool: {item!r} must be KIND=N with N >= 1 and KIND one of {', '.join(KINDS)}")
        pool.append((kind, int(n)))
    if not any(k == "clean" for k, _ in pool):
        raise UserError("--pool: needs some clean demonstrations (the others are judged beside them)")
    return tuple(pool)


def shifted_params(env):
    """Params of a shifted scene distribution: a smaller spawn square (point) or wider object jitter (MJX tasks)."""
    p = env.default_params
    if hasattr(p, "spawn_range"):
        return p.replace(spawn_range=p.spawn_range * 0.3)
    return p.replace(dr=p.dr.replace(object_pos=p.dr.object_pos * 4.0))


def expert_with_key(env):
    from envs.experts import make_expert

    policy = make_expert(env)
    return lambda s, k, p: policy(s, p)


def write_record(res: dict, out: Path, title: str, header: list[str] | None = None) -> None:
    """economic_truth.md and economic_truth.png of one study in ``out`` (``header``: lines under the title)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, card = res["table"], res["card"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind in sorted(set(t["kind"])):
        m = t["kind"] == kind
        ax[0].scatter(t["pred_raw_mean"][m], t["realized"][m], label=kind, s=18)
    ax[0].axhline(0, color="k", lw=0.5)
    ax[0].set_xlabel("predicted E[ΔMPL] (units/h, cross-fitted value model)")
    ax[0].set_ylabel("realized ΔMPL (datamodel of retrained students)")
    ax[0].set_title(f"Spearman {card['spearman']:.2f}, LDS {card['lds']:.2f}")
    ax[0].legend(fontsize=7)
    ks = sorted({k for k, _ in res["removal"]})
    for name in ("top", "random", "bottom"):
        ax[1].plot([0] + [100 * k for k in ks], [res["full_mp"]] + [res["removal"][(k, name)] for k in ks], "o-",
                   label=f"remove {name}-valued")
    ax[1].set_xlabel("% of the pool removed")
    ax[1].set_ylabel("student MPᵣ (units/h)")
    ax[1].set_title("Removal curve (the top-valued should hurt most)")
    ax[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "economic_truth.png", dpi=110)
    plt.close(fig)
    lines = [f"# {title}", "", *(header or []),
             *([f"- **the value model was not fitted** for {card['unfitted']} of {len(card['trueup_pct'])} datapoints: "
                "their fold's history held fewer than `min_samples_for_fit` rows, so their quotes are E[ΔMPL] = 0 "
                "at the κ floor and their intervals have zero width (use fewer --folds or a larger pool)"]
               if card.get("unfitted") else []),
             "", "| score | value | goal | met |", "|---|---:|---|---|"]
    for name, (goal, met) in card["goals"].items():
        lines.append(f"| {name} | {card[name]:.3f} | {goal} | {'yes' if met else 'no'} |")
    lines += [f"| lds | {card['lds']:.3f} | (higher is better) | |",
              f"| split-half reliability of realized gains | {res['reliability']:.3f} | | |",
              *([f"| realized gains known to ± (median half-width of their 80% bootstrap intervals, units/h) | "
                 f"{card['realized_halfwidth']:.3f} | | |",
                 f"| median E[ΔMPL] of a quote with a premium (a true-up within 20% needs the gain to ± a fifth "
                 f"of it) | {card['priced_expected_median']:.3f} | | |"] if "realized_halfwidth" in card else []),
              f"| spearman vs realized clipped at 0 (what is billed) | {card['spearman_clipped']:.3f} | | |",
              *([f"| coverage of the quotes' intervals (clipped at 0) vs realized clipped at 0 | "
                 f"{card['coverage_clipped']:.3f} | | |"] if "coverage_clipped" in card else []),
              f"| spearman of novelty_score alone vs realized | {card['spearman_novelty']:.3f} | | |",
              f"| spearman of causal_gain alone vs realized | {card['spearman_causal_gain']:.3f} | | |",
              *([f"| spearman of tracin_signed alone vs realized | {card['spearman_tracin_signed']:.3f} | | |"]
                if "spearman_tracin_signed" in card else []),
              *([f"| spearman of tracin_student alone vs realized (TracIn on the student, its states) | "
                 f"{card['spearman_tracin_student']:.3f} | | |"] if "spearman_tracin_student" in card else []),
              *([f"| slips only: spearman of {name} vs the planted dose of harm (− share of steps "
                 f"reversed; known without retraining) | {card['dose_spearman_' + key]:.3f} | | |"
                 for key, name in (("realized", "the realized gain"), ("predicted", "the predicted gain"),
                                   ("tracin", "signed TracIn"))]
                if "dose_spearman_realized" in card else []), "",
              "Tier confusion (rows: predicted tier 0/1/2, columns: realized):", ""]
    lines += ["    " + " ".join(f"{int(v):4d}" for v in row) for row in card["tier_confusion"]]
    pct = card["trueup_pct"][np.isfinite(card["trueup_pct"])]
    if pct.size:
        q = np.percentile(pct, [10, 25, 50, 75, 90])
        lines += ["", f"True-ups as % of the premium (positive = refunded; {pct.size} quotes with a premium): "
                  + ", ".join(f"p{p} {v:+.0f}%" for p, v in zip((10, 25, 50, 75, 90), q)), ""]
    else:
        lines += ["", "True-ups as % of the premium: none (no quote had a premium: every E[ΔMPL] was <= 0)", ""]
    lines += ["", "Realized gain by kind (mean):", ""]
    for kind in sorted(set(t["kind"])):
        m = t["kind"] == kind
        lines.append(f"- {kind}: realized {t['realized'][m].mean():+.2f}, predicted {t['pred_raw_mean'][m].mean():+.2f} (n={m.sum()})")
    ks = sorted({k for k, _ in res["removal"]})
    lines += ["", f"Removal curve: student MPᵣ with the whole pool {res['full_mp']:.2f}; without the", "",
              "| removed | top-valued | random | bottom-valued |", "|---|---:|---:|---:|"]
    lines += [f"| {100 * k:.0f}% | " + " | ".join(f"{res['removal'][(k, n)]:.2f}" for n in ("top", "random", "bottom")) + " |"
              for k in ks]
    lines += ["", f"Leave-one-out (full-pool MPᵣ {res['full_mp']:.2f} minus without it) vs datamodel gain:", ""]
    for i, v in res["loo"].items():
        lines.append(f"- {t['datapoint_id'][i]} ({t['kind'][i]}): LOO {v:+.2f}, datamodel {t['realized'][i]:+.2f}")
    (out / "economic_truth.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import jax
    import pandas as pd

    from train.setup import _kv, make_env
    from vpjax.cli import UserError
    from valuation import csv_formats as csvf, pricing, report, settings as vsettings
    from valuation.reconcile import main as reconcile_main

    from .datamodels import RetrainConfig
    from .economic_truth import StudyConfig, check_sizes, run_study

    t0 = time.time()
    out = Path(args.out)
    for flag, v, low in (("--subsets", args.subsets, 2), ("--sgd-steps", args.sgd_steps, 1), ("--eval-envs", args.eval_envs, 1),
                         ("--warm-start", args.warm_start, 0), ("--repeats", args.repeats, 1), ("--loo", args.loo, 0),
                         ("--folds", args.folds, 2), ("--seeds", args.seeds, 0)):
        if v < low:
            raise UserError(f"{flag} {v}: must be >= {low}")
    if not args.learning_rate > 0:
        raise UserError(f"--learning-rate {args.learning_rate}: must be > 0")
    try:
        removal = tuple(float(x) for x in args.removal.split(","))
    except ValueError:
        raise UserError(f"--removal {args.removal!r}: must be fractions separated by commas") from None
    if not all(0 < k < 1 for k in removal):
        raise UserError(f"--removal {args.removal!r}: each fraction must be in (0, 1)")
    if args.init and args.warm_start:
        raise UserError("--init and --warm-start: give one (the students start from one policy)")
    if args.causal == "student" and not (args.init or args.warm_start):
        raise UserError("--causal student: needs a student (--init RUN or --warm-start ROUNDS)")
    cfg = StudyConfig(retrain=RetrainConfig(subsets=args.subsets, sgd_steps=args.sgd_steps, eval_envs=args.eval_envs,
                                            learning_rate=args.learning_rate, seeds=args.seeds),
                      removal=removal, repeats=args.repeats, loo=args.loo, folds=args.folds, causal=args.causal,
                      seed=args.seed, **({"pool": parse_pool(args.pool)} if args.pool else {}))
    settings = vsettings.load(args.config)
    try:
        check_sizes(cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    env_kwargs = _kv(args.env_arg, "--env-arg")
    if args.init:
        from .policy_file import _source_config
        from .setup import _from_init_run

        try:
            conf = _from_init_run(args.init, _source_config)
        except SystemExit as e:  # one line naming --init
            raise UserError(str(e)) from None
        args.env = args.env or conf.get("env", "dishwashing")
        env_kwargs = {**(conf.get("env_kwargs") or {}), **env_kwargs}  # the observation the policy was trained on
    args.env = args.env or "envs.point:PointDeliver"
    env = make_env(args.env, **env_kwargs)
    out.mkdir(parents=True, exist_ok=True)
    student = None
    if args.init:
        from .economic_truth import student_from_policy

        try:
            student, _ = student_from_policy(env, args.init, expert_with_key(env), seed=args.seed)
        except ValueError as e:
            raise UserError(str(e)) from None
    if args.warm_start:
        from envs.experts import make_expert

        from .economic_truth import warm_start_student

        student, _ = warm_start_student(env, make_expert(env), args.warm_start, seed=args.seed)
    try:
        res = run_study(env, expert_with_key(env), cfg, settings, shifted_params=shifted_params(env), steps=args.steps,
                        student=student)
    except ValueError as e:  # a size the study refuses (e.g. too few subsets for its rows), naming the setting
        raise UserError(str(e)) from None
    t = res["table"]
    csvf.write_realized_csv(out / "realized_mpl.csv", zip(t["datapoint_id"], t["realized"]))
    csvf.write_quotes_csv(out / "premium_quotes.csv", res["quotes"])
    pd.DataFrame(t).to_csv(out / "study.csv", index=False)
    reconcile_main(["--quotes", str(out / "premium_quotes.csv"), "--realized", str(out / "realized_mpl.csv"),
                    "--output", str(out / "trueup_summary.csv"), "--config", args.config])
    trueups = [pricing.compute_trueup(q, r) for q, r in zip(res["quotes"], t["realized"])]
    csvf.write_data_value_csv(out / "data_value.csv", res["quotes"], trueups)
    report.make_pdf(csvf.read_data_value_csv(out / "data_value.csv"), out / "data_valuation.pdf",
                    title=f"Economic truth: {args.env}")
    title = f"Economic truth, {args.env}: {len(t['kind'])} demonstrations, {cfg.retrain.subsets} x 2 retrained students"
    header = [f"- date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"JAX {jax.__version__} on {jax.default_backend()}; wall time {time.time() - t0:.0f} s",
              f"- command: `python -m train.economic_truth {shlex.join(argv if argv is not None else sys.argv[1:])}`",
              f"- pool: {', '.join(f'{k} {n}' for k, n in cfg.pool)}; students: "
              + (f"the policy {args.init} fine-tuned by " if args.init else
                 f"a {args.warm_start}-round DAgger student fine-tuned by " if args.warm_start else "fresh MLPs trained by ")
              + f"{cfg.retrain.sgd_steps} Adam steps (lr {cfg.retrain.learning_rate:g}), {cfg.retrain.eval_envs} held-out "
              f"robots each" + (f", training seeds shared by the subsets: {cfg.retrain.seeds}" if cfg.retrain.seeds else "")
              + f"; causal_gain: TracIn on the {'student' if cfg.causal == 'student' else 'BC ensemble'}; "
              "scores are against the raw realized gains",
              f"- coverage is that of the value model's own {100 * settings.data_valuation.confidence_level:g}% "
              "intervals (E[ΔMPL] ± z·std, negatives kept) around "
              "the raw realized gains; `trueup_summary.csv` (valuation.reconcile) reports the quotes' intervals, "
              "clipped at 0 like the price"]
    write_record(res, out, title, header)
    if args.record:
        rec = Path(args.record)
        rec.parent.mkdir(parents=True, exist_ok=True)
        for ext in ("md", "png"):
            shutil.copyfile(out / f"economic_truth.{ext}", rec.with_name(f"{rec.name}.{ext}"))
    print((out / "economic_truth.md").read_text())
    return 0


if __name__ == "__main__":
    from vpjax.cli import run_main

    sys.exit(run_main(main, prog="python -m train.economic_truth"))
