"""``python -m train`` and ``python -m evaluate`` refuse bad input with one stderr line and exit status 2.

Each case runs the command's ``main`` in this process through :func:`vpjax.cli.run_main`, as its
``__main__`` does (a subprocess per case cost ~5 s of interpreter and JAX start-up); two cases run the real
commands in a subprocess. All of them fail before an env step is compiled.
"""

from __future__ import annotations

import pytest

TASK = "task: dishwashing\nhuman_wage: 18.0\n"
FILES = {
    "bad.yaml": TASK + "reward: beta: 0.5\n",
    "unknown.yaml": TASK + "reward:\n  betta: 0.5\n",
    "type.yaml": TASK + "reward:\n  beta: lots\n",
    "range.yaml": TASK + "data_valuation:\n  kappa_floor: 1.5\n",
    "ppo.yaml": TASK + "ppo:\n  num_envs: 0\n",
}

# (arguments, what the one line must name); {d} is the folder holding FILES
TRAIN = [
    (["--config", "{d}/bad.yaml"], ["bad.yaml", "line 3", "not valid YAML"]),
    (["--config", "{d}/unknown.yaml"], ["unknown.yaml", "reward.betta", "unknown key"]),
    (["--config", "{d}/type.yaml"], ["type.yaml", "reward.beta", "'lots'", "must be a number"]),
    (["--config", "{d}/range.yaml"], ["range.yaml", "data_valuation.kappa_floor = 1.5", "must be in (0, 1]"]),
    (["--config", "{d}/ppo.yaml"], ["ppo.yaml", "ppo.num_envs = 0", "must be >= 1"]),
    (["--config", "{d}/missing.yaml"], ["missing.yaml", "not found"]),
    (["--set", "ppo.num_envs=0"], ["--set ppo.num_envs", "ppo.num_envs = 0", "must be >= 1"]),
    (["--set", "reward.beta"], ["--set", "reward.beta", "KEY=VALUE"]),
    (["--alpha", "-1"], ["--alpha", "reward.alpha_initial = -1.0", "must be >= 0"]),
    (["--reward", "nosuch"], ["--reward", "nosuch", "not a built-in"]),
    (["--reward", "no_such_module_xyz:f"], ["--reward", "no_such_module_xyz", "cannot import"]),
    (["--reward", "tests/train/my_reward_plugin.py:vector_total"],
     ["--reward", "'vector_total'", "term 'total'", "shape (3,)"]),
    (["--sweep", "gamma=a,b"], ["--sweep gamma", "must be numbers"]),
    (["--sweep", "gamma"], ["--sweep", "NAME=v1,v2"]),
    (["--init", "{d}/no_run"], ["--init", "no_run", "no such run"]),
    (["--num-envs", "x"], ["--num-envs", "invalid int value: 'x'"]),
    (["--num-seeds", "0"], ["--num-seeds 0", "must be >= 1"]),
    (["--bogus-flag"], ["unrecognized arguments: --bogus-flag"]),
    (["--env", "knitting"], ["--env knitting", "not a registered task"]),
    (["--env-arg", "episode_length"], ["--env-arg", "episode_length", "KEY=VALUE"]),
]

EVALUATE = [
    (["--policy", "{d}/no_run"], ["--policy", "no_run", "no config.json"]),
    ([], ["--policy", "required"]),
    (["--policy", "{d}", "--member", "x"], ["--member", "invalid int value"]),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    for name, text in FILES.items():
        (d / name).write_text(text)
    return d


def _refused(refusal, command, args, folder, names):
    from train.cli import main as train_main
    from train.evaluate import main as evaluate_main
    from vpjax.cli import run_main

    main = {"train": train_main, "evaluate": evaluate_main}[command]
    line = refusal(lambda argv: run_main(main, argv, prog=f"python -m {command}"), [a.format(d=folder) for a in args])
    for name in names:
        assert name.format(d=folder) in line, (name, line)


@pytest.mark.parametrize("args, names", TRAIN, ids=[" ".join(a) for a, _ in TRAIN])
def test_train_refuses_bad_input_in_one_line(refusal, folder, args, names):
    _refused(refusal, "train", ["--env", "dishwashing", "--out", "{d}/run", *args], folder, names)


@pytest.mark.parametrize("args, names", EVALUATE, ids=[" ".join(a) or "no-args" for a, _ in EVALUATE])
def test_evaluate_refuses_bad_input_in_one_line(refusal, folder, args, names):
    _refused(refusal, "evaluate", args, folder, names)


@pytest.mark.parametrize("command, args, names", [
    ("train", ["--env", "dishwashing", "--out", "{d}/run", "--config", "{d}/range.yaml"],
     ["range.yaml", "data_valuation.kappa_floor = 1.5"]),
    ("evaluate", ["--policy", "{d}", "--member", "x"], ["--member", "invalid int value"]),
])
def test_the_real_commands_refuse_in_one_line(refused_command, folder, command, args, names):
    line = refused_command(command, [a.format(d=folder) for a in args])
    for name in names:
        assert name.format(d=folder) in line, (name, line)


def test_internal_errors_keep_their_traceback():
    from vpjax.cli import UserError, run_main

    def buggy(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_main(buggy, [])

    def refuses(argv):
        raise UserError("--flag x: must be y")

    assert run_main(refuses, []) == 2
