"""``python -m train.video_to_policy``: flags become the typed step configs; bad input is one line, status 2."""

from __future__ import annotations

import pytest

from train.video_to_policy import cli, pipeline as P


def test_flag_defaults_are_the_step_configs_defaults():
    p = cli.build_parser()
    assert cli._idm(p.parse_args(["idm", "--data", "d"])) == P.IDMStep("d")
    assert cli._bc(p.parse_args(["bc", "--data", "d"])) == P.BCStep("d")
    assert cli._diffusion(p.parse_args(["diffusion", "--data", "d"])) == P.DiffusionStep("d")
    assert cli._finetune(p.parse_args(["finetune", "--data", "d"])) == P.FinetuneStep("d")
    assert cli._evaluate(p.parse_args(["evaluate", "--data", "d"])) == P.EvaluateStep("d")
    assert cli._value(p.parse_args(["value", "--data", "d"])) == P.ValueStep("d")
    assert cli._collect(p.parse_args(["collect", "--out", "d"])) == P.CollectConfig(out="d")
    chain = cli._chain(p.parse_args(["chain", "--out", "d"]))
    assert chain == P.ChainConfig(P.CollectConfig(out="d"))
    assert cli._finetune(p.parse_args(["finetune", "--data", "d", "--iterations", "4"])).ppo_config().total_timesteps == 32 * 8 * 4


BAD = [
    (["idm", "--data", "{d}/missing"], ["missing", "folder not found"]),
    (["bc", "--data", "{d}", "--labels", "maybe"], ["--labels", "invalid choice: 'maybe'"]),
    (["idm", "--data", "{d}", "--hidden", "a,b"], ["--hidden", "comma-separated integers"]),
    (["collect", "--task", "knitting", "--out", "{d}/x"], ["--task", "invalid choice: 'knitting'"]),
    (["finetune"], ["--data", "required"]),
    (["launch"], ["invalid choice: 'launch'"]),
]


@pytest.mark.parametrize("args, names", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_v2p_cli_refuses_bad_input_in_one_line(tmp_path, refusal, args, names):
    """In this process, through the command's ``main`` (a subprocess per case cost ~5 s of start-up)."""
    from train.video_to_policy.cli import main

    line = refusal(main, [a.format(d=tmp_path) for a in args])
    for name in names:
        assert name in line, (name, line)


def test_the_real_command_refuses_in_one_line(tmp_path, refused_command):
    line = refused_command("train.video_to_policy", ["idm", "--data", str(tmp_path / "missing")])
    assert "folder not found" in line, line
