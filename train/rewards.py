"""Built-in reward variants and the ``--reward module:function`` plug-in loader.

Every reward function has the signature of :func:`vpjax.economics.reward_terms`:
``(mp, prev_mp, err, params: EconParams) -> dict`` with at least ``delta_mp``, ``error``,
``wage_loss`` and ``total``. It is passed to the env constructor (``reward_fn=``) and called inside
the jitted ``env.step`` on each episode's last step.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable

import jax.numpy as jnp

from vpjax import economics as E


def import_module_or_file(name: str):
    """Imports ``package.module`` or a file ``path/to/file.py`` (registered under its stem).

    Shared by ``--reward MODULE:FUNCTION`` and ``--env MODULE:FACTORY``.

    Raises:
      FileNotFoundError: a ``.py`` path that does not exist; ImportError: an unimportable module.
    """
    if name.endswith(".py") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"file {path} not found")
        modspec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(modspec)
        sys.modules[path.stem] = module
        modspec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def seed_reward(mp, prev_mp, err, params):
    """The default reward r = α·ΔMPᵣ/MPₕ − β·e − γ·|ŵᵣ/wₕ − 1|^q (README: Economics; economics.reward_terms)."""
    return E.reward_terms(mp, prev_mp, err, params)


def one_sided_wage(mp, prev_mp, err, params):
    """Like :func:`seed_reward`, but only a wage *shortfall* is penalized (exceeding wₕ is not)."""
    terms = E.reward_terms(mp, prev_mp, err, params)
    shortfall = jnp.maximum(0.0, 1.0 - E.wage_parity(E.implied_wage(mp, err, params), params))
    loss = shortfall ** params.wage_loss_power
    total = params.alpha * terms["delta_mp"] - params.beta * terms["error"] - params.gamma * loss
    return {**terms, "wage_loss": loss, "total": total}


def productivity_level(mp, prev_mp, err, params):
    """Rewards the level of productivity parity (capped at 1) instead of its change; keeps e and wage terms."""
    terms = E.reward_terms(mp, prev_mp, err, params)
    level = jnp.minimum(E.productivity_parity(mp, params), 1.0)
    total = params.alpha * level - params.beta * terms["error"] - params.gamma * terms["wage_loss"]
    return {**terms, "delta_mp": level, "total": total}


BUILTIN: dict[str, Callable] = {
    "seed": seed_reward,
    "one_sided_wage": one_sided_wage,
    "productivity_level": productivity_level,
}


def resolve_reward(spec: str | None) -> Callable | None:
    """``None``/"seed" -> the default; a built-in name; ``module:function``; or ``path/to/file.py:function``.

    Raises:
      ValueError: unknown name, unimportable module, missing function, or a function that breaks the
        reward contract of :func:`vpjax.economics.check_reward_fn` (the message names which).
    """
    if spec is None or spec == "seed":
        return None
    if spec in BUILTIN:
        return BUILTIN[spec]
    if ":" not in spec:
        raise ValueError(f"--reward {spec!r}: not a built-in ({', '.join(BUILTIN)}) nor MODULE:FUNCTION")
    mod_name, fn_name = spec.rsplit(":", 1)
    try:
        module = import_module_or_file(mod_name)
    except Exception as e:
        raise ValueError(f"--reward {spec!r}: cannot import {mod_name!r} ({type(e).__name__}: {e})") from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ValueError(f"--reward {spec!r}: {mod_name!r} has no function {fn_name!r}")
    try:
        E.check_reward_fn(fn, E.EconParams.create())
    except TypeError as e:  # one line naming the function and the term; the CLI prints it as a user error
        raise ValueError(f"--reward {spec!r}: {e}") from None
    return fn
