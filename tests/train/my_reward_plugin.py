"""A user reward for the plug-in test: pays productivity level, no wage term."""

import jax.numpy as jnp

from vpjax import economics as E


def level_reward(mp, prev_mp, err, params):
    terms = E.reward_terms(mp, prev_mp, err, params)
    total = 2.0 * E.productivity_parity(mp, params) - params.beta * err
    return {**terms, "total": total}


def broken_reward(mp, prev_mp, err, params):
    return {"total": mp}


def logged_reward(mp, prev_mp, err, params):
    """The seed's reward plus two terms to log: a constant 2.0 and the productivity parity."""
    terms = E.reward_terms(mp, prev_mp, err, params)
    return {**terms, "two": jnp.full_like(terms["total"], 2.0), "parity": E.productivity_parity(mp, params)}


def vector_total(mp, prev_mp, err, params):
    terms = E.reward_terms(mp, prev_mp, err, params)
    return {**terms, "total": jnp.stack([terms["total"]] * 3)}


def int_total(mp, prev_mp, err, params):
    return {**E.reward_terms(mp, prev_mp, err, params), "total": jnp.int32(1)}
