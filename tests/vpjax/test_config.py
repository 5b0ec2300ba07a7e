"""vpjax.config: shipped configs load; each bad value fails with one line naming file, key and rule."""

import dataclasses

import pytest

from vpjax import economics as E
from vpjax.config import ConfigError, load_config, parse_section, RewardConfig


def test_shipped_configs_load_and_build_econ_params():
    dish = load_config("dishwashing")
    assert dish.task.bls_occupation_code == "35-9021"
    p = dish.econ_params()
    assert float(E.implied_wage(54.0, 0.05, p)) == pytest.approx(13.5, rel=1e-6)
    brick = load_config("bricklaying")
    assert brick.task.task == "bricklaying" and brick.human_wage > 0
    assert "configs/training.yaml" in " ".join(brick.sources)


def _write(tmp_path, text):
    path = tmp_path / "task.yaml"
    path.write_text("task: dishwashing\nhuman_wage: 18.0\n" + text)
    return path


BAD = [
    ("colour: blue\n", "colour", "unknown key"),
    ("reward:\n  alpah_initial: 1.0\n", "reward.alpah_initial", "unknown key"),
    ("price_per_unit: cheap\n", "price_per_unit", "must be a number"),
    ("convergence:\n  eval_window: 2.5\n", "convergence.eval_window", "must be an integer"),
    ("price_per_unit: -0.3\n", "price_per_unit", "must be > 0"),
    ("damage_cost: -1\n", "damage_cost", "must be >= 0"),
    ("data_valuation:\n  tier0_threshold: 3.0\n  tier1_threshold: 3.0\n", "data_valuation.tier0_threshold", "must be < tier1_threshold"),
    ("data_valuation:\n  kappa_floor: 0.0\n", "data_valuation.kappa_floor", "must be in (0, 1]"),
    ("data_valuation:\n  kappa_floor: 1.2\n", "data_valuation.kappa_floor", "must be in (0, 1]"),
    ("data_valuation:\n  confidence_level: 1.0\n", "data_valuation.confidence_level", "must be in (0, 1)"),
    ("data_valuation:\n  confidence_level: 0\n", "data_valuation.confidence_level", "must be in (0, 1)"),
    ("reward:\n  wage_loss: cubic\n", "reward.wage_loss", "must be one of"),
    ("reward: 3\n", "reward", "must be a mapping"),
]


@pytest.mark.parametrize("text, key, rule", BAD)
def test_bad_config_fails_with_one_clear_line(tmp_path, text, key, rule):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "task.yaml" in msg and key in msg and rule in msg


def test_negative_wage_rejected(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("task: dishwashing\nhuman_wage: -18\n")
    with pytest.raises(ConfigError, match=r"t.yaml: human_wage = -18.0: must be > 0"):
        load_config(path)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("task: dishwashing\nreward: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+"):
        load_config(path)


def test_missing_file_and_unknown_task():
    with pytest.raises(ConfigError, match="not found"):
        load_config("nowhere/none.yaml")
    with pytest.raises(ConfigError, match="no such task config.*dishwashing"):
        load_config("knitting")


def test_cli_overrides_apply_and_validate():
    cfg = load_config("dishwashing", {"alpha": "0.5", "gamma-schedule": "cosine", "reward.beta": "0.7"})
    assert cfg.reward.alpha_initial == 0.5 and cfg.reward.gamma_schedule == "cosine" and cfg.reward.beta == 0.7
    assert float(cfg.econ_params().alpha) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"--alpha.*reward.alpha_initial = -1.0: must be >= 0"):
        load_config("dishwashing", {"alpha": "-1"})
    with pytest.raises(ConfigError, match=r"--set data_valuation.kappa_floor.*must be in \(0, 1\]"):
        load_config("dishwashing", {"data_valuation.kappa_floor": "2"})
    with pytest.raises(ConfigError, match=r"--set reward.nope.*unknown key"):
        load_config("dishwashing", {"reward.nope": "1"})


def test_config_is_frozen_and_defaults_untouched():
    cfg = load_config("dishwashing", {"beta": "0.9"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.reward.beta = 0.1  # type: ignore[misc]
    assert load_config("dishwashing").reward.beta == 0.5


def test_wage_from_soc_code(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text('task: dishwashing\nhuman_wage: null\nbls_occupation_code: "47-2022"\n')
    cfg = load_config(path)
    assert cfg.human_wage == pytest.approx(23.11)
    assert "Stonemasons" in cfg.human_wage_source


def test_external_section_parsed_by_owner(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Owner:
        episode_length: int = 8

    path = _write(tmp_path, "env:\n  episode_length: 2.5\n")
    cfg = load_config(path)
    with pytest.raises(ConfigError, match=r"task.yaml: env.episode_length = 2.5: must be an integer"):
        cfg.section(Owner, "env")
    assert parse_section(RewardConfig, {"beta": 1}, "x").beta == 1.0
