"""Property tests of the config loader: any bad value is refused with one line naming its key and file."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from train.config import PPOConfig  # noqa: E402
from vpjax.config import SECTIONS, ConfigError, TaskConfig, load_config  # noqa: E402

TASK = "task: dishwashing\nhuman_wage: 18.0\n"


def _ruled_fields():
    """(section, field name, predicate) of every field with a range rule."""
    out = [("", f.name, f.metadata["rule"][0]) for f in dataclasses.fields(TaskConfig) if "rule" in f.metadata]
    for name, cls in SECTIONS.items():
        out += [(name, f.name, f.metadata["rule"][0]) for f in dataclasses.fields(cls) if "rule" in f.metadata]
    return out


RULED = _ruled_fields()
NUMERIC = [(s, k) for s, cls in [("", TaskConfig), *SECTIONS.items()] for f in dataclasses.fields(cls)
           for k in [f.name] if typing.get_type_hints(cls)[k] in (float, int, float | None)]


def _yaml(section: str, key: str, value) -> str:
    import yaml

    text = yaml.safe_dump({key: value}, default_flow_style=True).strip()[1:-1]
    return TASK + (f"{section}:\n  {text}\n" if section else f"{text}\n")


def _refused(tmp_path, section, key, value):
    path = tmp_path / "prop.yaml"
    path.write_text(_yaml(section, key, value))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg and "prop.yaml" in msg
    assert (f"{section}.{key}" if section else key) in msg, msg


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_out_of_range_numbers_are_refused_naming_the_key(tmp_path_factory, data):
    section, key, ok = data.draw(st.sampled_from(RULED))
    value = data.draw(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda v: not ok(v)))
    if key in ("eval_window", "lookback_window", "min_samples_for_fit", "trueup_period_days"):
        value = int(math.floor(value))
        hypothesis.assume(not ok(value))
    _refused(tmp_path_factory.mktemp("p"), section, key, value)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_values_of_the_wrong_type_are_refused_naming_the_key(tmp_path_factory, data):
    section, key = data.draw(st.sampled_from(NUMERIC))
    bad = st.one_of(st.text(min_size=1).filter(lambda t: not _parses_as_number(t)), st.booleans(),
                    st.lists(st.integers(), max_size=3))
    _refused(tmp_path_factory.mktemp("p"), section, key, data.draw(bad))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_unknown_keys_are_refused_naming_the_key(tmp_path_factory, data):
    section = data.draw(st.sampled_from(["", *SECTIONS]))
    cls = SECTIONS.get(section, TaskConfig)
    known = {f.name for f in dataclasses.fields(cls)} | ({"env", "ppo", "imitation", *SECTIONS} if not section else set())
    key = data.draw(st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(lambda k: k not in known))
    _refused(tmp_path_factory.mktemp("p"), section, key, 1)


@settings(max_examples=40, deadline=None)
@given(value=st.integers(max_value=0))
def test_ppo_section_refusals_name_the_file_and_ppo_key(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("p") / "prop.yaml"
    path.write_text(TASK + f"ppo:\n  num_envs: {value}\n")
    with pytest.raises(ConfigError, match=rf"prop.yaml: ppo.num_envs = {value}: must be >= 1"):
        load_config(path).section(PPOConfig, "ppo")


def _parses_as_number(text: str) -> bool:
    import yaml

    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return True  # not a clean string value either; leave it out
    return isinstance(v, (int, float)) or v is None
