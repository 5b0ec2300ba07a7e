"""The economic-truth study on the point task: a planted harmful demonstration (the expert's actions
reversed) has a negative realized gain by counterfactual retraining, and the engine's cross-fitted
prediction puts it below the clean demonstrations."""

import numpy as np
import pytest

from envs.point import PointDeliver, expert
from train.datamodels import RetrainConfig
from train.economic_truth import StudyConfig, run_study
from train.economic_truth_cli import shifted_params
from valuation import settings as vsettings


def test_reversed_demonstration_realized_negative_and_predicted_below_clean():
    env = PointDeliver()
    cfg = StudyConfig(pool=(("clean", 12), ("reversed", 3), ("noisy", 2), ("duplicate", 2), ("shifted", 2)),
                      retrain=RetrainConfig(subsets=96), removal=(0.2,), repeats=1, loo=3, folds=3)
    res = run_study(env, expert, cfg, vsettings.load("dishwashing"), shifted_params=shifted_params(env),
                    log=lambda *_: None)
    t = res["table"]
    bad, clean = t["kind"] == "reversed", t["kind"] == "clean"
    assert len(set(t["datapoint_id"])) == len(t["kind"])  # content hashes tell the demonstrations apart
    assert res["outcomes"]["mp"].max() > 0  # the retrained students learned something to lose
    assert np.all(t["realized"][bad] < 0), t["realized"][bad]
    assert t["realized"][clean].mean() > 0  # clean demonstrations help on average
    # each one below the clean average with its whole 80% bootstrap interval
    assert np.all(t["realized_hi"][bad] < t["realized"][clean].mean()), (t["realized_hi"][bad], t["realized"][clean])
    # the value model, fitted on the other folds' measured gains, predicts the planted ones below the clean ones
    assert t["pred_raw_mean"][bad].max() < np.median(t["pred_raw_mean"][clean]), (t["pred_raw_mean"], t["kind"])
    card = res["card"]
    assert card["tier_confusion"].sum() == len(t["kind"]) and np.isfinite(card["lds"])
    assert set(res["removal"]) == {(0.2, "top"), (0.2, "random"), (0.2, "bottom")}


@pytest.mark.parametrize("args,names", [
    (["--pool", "clean=4,bogus=2"], ["--pool", "'bogus=2'", "KIND=N"]),
    (["--pool", "noisy=4"], ["--pool", "clean"]),
    (["--subsets", "20"], ["--subsets", "= 20", ">= 36"]),
    (["--eval-envs", "0"], ["--eval-envs 0", ">= 1"]),
    (["--init", "runs/x", "--warm-start", "2"], ["--init", "--warm-start", "give one"]),
    (["--causal", "student"], ["--causal student", "needs a student"]),
    (["--seeds", "-1"], ["--seeds -1", ">= 0"]),
    (["--init", "/nonexistent/vpjax_run"], ["--init /nonexistent/vpjax_run", "no policy file"]),
])
def test_cli_refuses_bad_sizes_in_one_line_before_any_work(tmp_path, capsys, args, names):
    from train.economic_truth_cli import main
    from vpjax.cli import run_main

    assert run_main(main, ["--out", str(tmp_path / "out"), *args], prog="python -m train.economic_truth") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(n in err for n in names), err


def test_cli_writes_the_record_and_closes_the_loop_through_reconcile(tmp_path):
    from train.economic_truth_cli import main

    out = tmp_path / "out"
    assert main(["--pool", "clean=6,reversed=1,noisy=1,slips=3", "--subsets", "16", "--sgd-steps", "60", "--eval-envs", "8",
                 "--removal", "0.25", "--repeats", "1", "--loo", "2", "--folds", "2", "--out", str(out),
                 "--record", str(tmp_path / "rec" / "truth")]) == 0
    md = (out / "economic_truth.md").read_text()
    for part in ("| spearman |", "| coverage |", "| tier_diagonal |", "| median_abs_trueup_pct |", "| lds |",
                 "Tier confusion", "True-ups as % of the premium", "Removal curve", "Leave-one-out"):
        assert part in md, part
    assert (tmp_path / "rec" / "truth.md").read_text() == md and (tmp_path / "rec" / "truth.png").stat().st_size > 0
    for name in ("economic_truth.png", "data_valuation.pdf"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd

    study, trueups = pd.read_csv(out / "study.csv"), pd.read_csv(out / "trueup_summary.csv")
    realized = pd.read_csv(out / "realized_mpl.csv")
    assert len(study) == len(realized) == 11 and set(trueups["datapoint_id"]) == set(study["datapoint_id"])
    assert sorted(study.loc[study["kind"] == "slips", "slip_fraction"]) == [0.25, 0.5, 0.75]
    assert md.count("| slips only: spearman of ") == 3
    # 2 folds of 11 datapoints leave 5-6 history rows, fewer than min_samples_for_fit (10): said, not hidden
    assert "the value model was not fitted** for 11 of 11" in md and (study["pred_fitted"] == 0).all()
    assert study.loc[study["kind"] == "reversed", "causal_gain"].iloc[0] >= 0  # the engine's feature stays >= 0
    # coverage is the model's own interval around the raw gain; the quotes' is clipped at 0 as priced
    assert np.all(study["pred_raw_lower"] <= study["pred_raw_mean"]) and np.all(study["pred_lower"] >= 0)
    raw = np.mean((study["realized"] >= study["pred_raw_lower"]) & (study["realized"] <= study["pred_raw_upper"]))
    assert f"| coverage | {raw:.3f} |" in md


def test_cli_help_states_the_default_pool():
    from train.economic_truth import DEFAULT_POOL
    from train.economic_truth_cli import build_parser

    text = "".join(build_parser().format_help().split())  # argparse wraps inside long words
    assert "default" + ",".join(f"{k}={n}" for k, n in DEFAULT_POOL) in text


def test_on_policy_rows_and_student_tracin_on_a_trained_student():
    """``on_policy_rows`` scores a policy as ``evaluate_actor`` does (same scenes, same MPᵣ), and
    ``student_tracin`` is the summed cosine it documents. (It does not rank the reversed demonstration below
    the clean ones on this task: with 40 rows per demonstration the cosines are noise; see
    benchmarks/results/economic_truth_point.md.)"""
    import jax
    import jax.numpy as jnp
    import optax

    from train.acting import evaluate_actor
    from train.datamodels import MLP, Student, demonstration_pool
    from train.economic_truth import on_policy_rows, student_tracin

    env = PointDeliver()
    pool = demonstration_pool(env, expert, jax.random.PRNGKey(0), ["clean"] * 6 + ["reversed"])
    o = jnp.asarray(pool["obs"][:6].reshape(-1, env.observation_size))
    a = jnp.asarray(pool["act"][:6].reshape(-1, env.action_size))
    net = MLP((32, 32), env.action_size)
    apply = lambda p, x: jnp.tanh(net.apply(p, x))  # noqa: E731
    loss = lambda p, x, y: jnp.mean((apply(p, x) - y) ** 2)  # noqa: E731
    params, opt = net.init(jax.random.PRNGKey(1), o[:1]), optax.adam(3e-3)

    @jax.jit
    def fit(params):
        def step(c, _):
            p, s = c
            u, s = opt.update(jax.grad(loss)(p, o, a), s, p)
            return (optax.apply_updates(p, u), s), None
        return jax.lax.scan(step, (params, opt.init(params)), None, length=300)[0][0]

    params = fit(params)
    key, robots = jax.random.PRNGKey(5), 6
    rows = on_policy_rows(env, lambda x: apply(params, x[None])[0], expert, key, robots, env.episode_length)
    assert rows["obs"].shape == (robots, env.episode_length, env.observation_size)
    resets = jax.vmap(lambda k: jax.random.split(k)[0])(jax.random.split(key, robots))
    ref = evaluate_actor(env, env.default_params, lambda s, _: apply(params, s.obs), None, robots, keys=resets,
                         per_robot=True)
    np.testing.assert_allclose(rows["mp"], np.asarray(ref["mp"]), rtol=1e-5, atol=1e-5)
    assert rows["mp"].mean() > 0  # the student works, so its states are worth scoring on

    # the score of a datapoint is the sum over its rows of cos(row gradient, gradient of the loss on the
    # student's own states); checked against a direct computation (chunking and padding must not change it)
    score = student_tracin(Student(params, apply, loss), pool, rows, chunk=64)
    flat = lambda g: jnp.concatenate([x.ravel() for x in jax.tree.leaves(g)])  # noqa: E731
    g_val = flat(jax.grad(loss)(params, rows["obs"].reshape(-1, env.observation_size),
                                rows["act"].reshape(-1, env.action_size)))
    for i in (0, 6):
        cos = [float(flat(jax.grad(loss)(params, pool["obs"][i, t][None], pool["act"][i, t][None])) @ g_val
                     / jnp.linalg.norm(flat(jax.grad(loss)(params, pool["obs"][i, t][None], pool["act"][i, t][None])))
                     / jnp.linalg.norm(g_val)) for t in range(env.episode_length)]
        np.testing.assert_allclose(score[i], sum(cos), rtol=1e-3, atol=1e-3)


def test_cli_refuses_an_init_run_with_an_unreadable_config_in_one_line(tmp_path, capsys):
    from train.economic_truth_cli import main
    from vpjax.cli import run_main

    run = tmp_path / "run"
    run.mkdir()
    (run / "policy.msgpack").write_bytes(b"")
    (run / "config.json").write_text("{not json")
    assert run_main(main, ["--init", str(run), "--out", str(tmp_path / "out")], prog="python -m train.economic_truth") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--init {run}" in err and "unreadable" in err, err
    assert not (tmp_path / "out").exists()
