"""A user reward for the plug-in test: pays productivity level, no wage term."""

import jax.numpy as jnp

from vpjax import economics as E


def level_reward(mp, prev_mp, err, params):
    terms = E.reward_terms(mp, prev_mp, err, params)
    total = 2.0 * E.productivity_parity(mp, params) - params.beta * err
    return {**terms, "total": total}


def broken_reward(mp, prev_mp, err, params):
    return {"total": mp}
