"""The bricklaying task's scripted expert (registered with the task in envs/__init__.py)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.bricklaying import Bricklaying
from envs.experts import goal_policy, require_right_arm
from envs.robot import FINGER_OPEN

# Motion parameters of the bricklaying expert: careful human-like speeds.
SPEED = 0.30  # m/s of the commanded grasp point in free motion
SLOW = 0.10  # m/s when descending onto a brick or into the course
CARRY_Z = 1.00  # m, carry height of the grasp point (brick bottom ~10 cm above the bench)
JOINT_LEAD = 0.02  # m, joint mode: how far ahead of the measured grasp point the IK target runs
TRAVEL_LIFT = 0.08  # m: a carried brick lower than this above its resting height first goes straight up
GRASP_ABOVE = 0.01  # m, grasp point above the brick centre (finger tips clear the bench)
WAIT_LIFT = 0.10  # m above the carry height: where the empty hand waits, over the tub, while a brick mortars


class _Layout(NamedTuple):
    """The env's fixed geometry the expert reads, gathered once per env."""

    slots: jax.Array  # [S, 3] the course's targets
    rest_z: jax.Array  # [N] resting height of each brick's centre
    mortar: jax.Array  # [3] mortar tub centre
    mortar_half: jax.Array  # [2] the tub's xy half-extent
    n_bricks: int
    n_slots: int


class _Scene(NamedTuple):
    """One step's view of the bricks and the hand, shared by :func:`_carry` and :func:`_fetch`."""

    info: dict  # the state's info (slot_filled, ...)
    ee: jax.Array  # [3] grasp point
    pos: jax.Array  # [N, 3] brick centres
    fingers: jax.Array  # finger slides
    held: jax.Array  # [N] bool
    laid: jax.Array  # [N] bool
    mortared: jax.Array  # [N] bool: dwelt in the mortar for the mortar time
    height: jax.Array  # [N] above the brick's resting height


def bricklaying_expert(env: Bricklaying):
    """Phase machine for the right arm of :class:`Bricklaying`; returns ``(state, params) -> action``.

    Fetch the first pallet brick, grasp it across its width, lift it, set it down in the mortar tub
    and let go (it dwells there for the mortar time; the hand waits above, higher than it carries), pick it up again, carry
    it above the first free target of the course, lower it slowly (compensating where the brick
    sits in the hand), let go, rise, repeat. Stateless:
    the phase is read from the state, so it jits, vmaps and scans. Works in ``ee_delta`` mode (any
    ``arms`` that include the right arm; the env's yaw hold keeps the brick square) and ``joint``
    mode (it runs the env's IK and squares the wrist itself).

    Each step it reads the scene (:func:`_see`), computes both branches, carrying the held brick
    (:func:`_carry`) and fetching the next one (:func:`_fetch`), and selects one by whether a brick
    is in the hand.
    """
    require_right_arm(env, "bricklaying expert")
    lay = _Layout(slots=jnp.asarray(env.slots), rest_z=jnp.asarray(env.brick_rest_z),
                  mortar=jnp.asarray(env.mortar_center), mortar_half=jnp.asarray(env.mortar_half),
                  n_bricks=env.n_bricks, n_slots=env.n_slots)

    def goal_and_grip(state, params):
        sc = _see(env, lay, state, params)
        carry, fetch = _carry(lay, sc), _fetch(lay, sc)
        any_held = jnp.any(sc.held)
        return tuple(jnp.where(any_held, c, f) for c, f in zip(carry, fetch))

    # joint mode: the servos lag the command, so the IK target leads the measured grasp point by
    # JOINT_LEAD (as the ee_delta target does by itself), and the wrist is squared to the course
    def square_wrist(data, q):
        return q.at[5].set(env.roll_target(data, 0, env.course_yaw))

    return goal_policy(env, goal_and_grip, joint_lead=JOINT_LEAD, wrist=square_wrist)


def _see(env: Bricklaying, lay: _Layout, state, params) -> _Scene:
    data = state.pipeline_state
    info = state.info
    r = env.robot
    ee = data.site_xpos[r.grasp_site[0]]
    pos, _, _ = env.brick_state(data)  # [N, 3]
    fingers = data.qpos[r.finger_qpos[0]]
    closed = jnp.all(fingers < FINGER_OPEN - 0.003)
    near = jnp.linalg.norm(pos - ee[None, :], axis=-1) < 0.05
    laid = info["laid"] > 0
    # "in hand" from geometry (brick at the grasp point, fingers closed), so a momentary loss of
    # one finger contact never opens the hand
    held = ((info["held"] > 0) | (near & closed)) & near & ~laid
    return _Scene(info=info, ee=ee, pos=pos, fingers=fingers, held=held, laid=laid,
                  mortared=info["mortar_time"] >= params.mortar_time, height=pos[:, 2] - lay.rest_z)


def _carry(lay: _Layout, sc: _Scene) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(goal, speed, grip) while carrying brick i: into the mortar tub, then, mortared, onto the course."""
    ee, rest_z, mortar = sc.ee, lay.rest_z, lay.mortar
    i = jnp.argmax(sc.held)
    p_i = sc.pos[i]
    s = jnp.argmin(jnp.where(sc.info["slot_filled"] > 0, 1e3, jnp.arange(lay.n_slots)))
    slot = lay.slots[s]
    off = ee - p_i  # where the brick sits in the hand
    squeezed = jnp.all(sc.fingers < FINGER_OPEN - 0.01)  # closed on the 6 cm brick (~0.025 each)
    low = sc.height[i] < TRAVEL_LIFT
    rise = jnp.array([ee[0], ee[1], jnp.where(squeezed, CARRY_Z, ee[2])])
    # not mortared: up from wherever it is, over to the tub, set it down in the mortar and let
    # go (it dwells there resting, not held: no grip creep over the mortar time)
    tub_xy_err = jnp.linalg.norm(p_i[:2] - mortar[:2])
    tub_hover = jnp.array([mortar[0] + off[0], mortar[1] + off[1], CARRY_Z])
    tub_down = jnp.array([mortar[0] + off[0], mortar[1] + off[1], rest_z[i] + 0.002 + off[2]])
    at_tub = tub_xy_err < 0.008
    near_tub = tub_xy_err < 0.03
    tub_hold = jnp.array([mortar[0] + off[0], mortar[1] + off[1], ee[2]])
    mortar_goal = jnp.where(at_tub, tub_down, jnp.where(near_tub, tub_hold, jnp.where(low, rise, tub_hover)))
    mortar_speed = jnp.where(at_tub | near_tub | low, SLOW, SPEED)
    set_down = (tub_xy_err <= 0.01) & (sc.height[i] < 0.004)
    # mortared: up out of the tub, over the first free target, down slowly, let go
    slot_xy_err = jnp.linalg.norm(p_i[:2] - slot[:2])
    at_slot = slot_xy_err < 0.006
    near_slot = slot_xy_err < 0.03
    slot_hover = jnp.array([slot[0] + off[0], slot[1] + off[1], CARRY_Z])
    slot_down = jnp.array([slot[0] + off[0], slot[1] + off[1], rest_z[i] + 0.002 + off[2]])
    # near the target the height is held while the xy error is corrected, so a small slip never
    # sends the hand back up
    slot_hold = jnp.array([slot[0] + off[0], slot[1] + off[1], ee[2]])
    place_goal = jnp.where(at_slot, slot_down, jnp.where(near_slot, slot_hold, jnp.where(low, rise, slot_hover)))
    place_speed = jnp.where(at_slot | near_slot | low, SLOW, SPEED)
    release = (slot_xy_err <= 0.008) & (sc.height[i] < 0.004)
    mortared = sc.mortared[i]
    return (jnp.where(mortared, place_goal, mortar_goal), jnp.where(mortared, place_speed, mortar_speed),
            jnp.where(jnp.where(mortared, release, set_down), 1.0, -1.0))


def _fetch(lay: _Layout, sc: _Scene) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(goal, speed, grip) with empty hands: a mortared brick resting in the tub first; else, if no
    brick dwells in the tub, the first pallet brick; else wait above the tub."""
    ee, pos, mortar, n_bricks = sc.ee, sc.pos, lay.mortar, lay.n_bricks
    down = ~sc.laid & (sc.height < 0.01)
    tub_d = jnp.abs(pos[:, :2] - mortar[None, :2])
    in_tub = jnp.all(tub_d < lay.mortar_half[None, :], axis=-1)
    ready = down & sc.mortared
    fresh = down & ~sc.mortared & ~in_tub
    busy = jnp.any(down & ~sc.mortared & in_tub)
    idx = jnp.arange(n_bricks)
    prio = jnp.where(ready, idx, jnp.where(fresh & ~busy, n_bricks + idx, 3 * n_bricks))
    j = jnp.argmin(prio)
    cand = prio < 2 * n_bricks
    p_j = pos[j]
    xy_err = jnp.linalg.norm(ee[:2] - p_j[:2])
    hover = jnp.array([p_j[0], p_j[1], CARRY_Z])
    grasp_pt = jnp.array([p_j[0], p_j[1], p_j[2] + GRASP_ABOVE])
    rise = jnp.array([ee[0], ee[1], CARRY_Z])
    too_low = (ee[2] < CARRY_Z - 0.03) & (xy_err > 0.03)
    # descend once within 6 mm of the brick in xy; keep descending (and centring) while within 2 cm below
    # the carry height: without this hysteresis the switch is a knife edge at 6 mm, where a learner that
    # imitates the expert settles just outside it and hovers (seen: 6 of 8 DAgger students)
    descending = (xy_err <= 0.006) | ((ee[2] < CARRY_Z - 0.02) & (xy_err <= 0.02))
    fetch_goal = jnp.where(too_low, rise, jnp.where(descending, grasp_pt, hover))
    fetch_speed = jnp.where(too_low | ~descending, SPEED, SLOW)
    at_grasp = (xy_err <= 0.01) & (jnp.abs(ee[2] - grasp_pt[2]) < 0.008)
    fetch_grip = jnp.where(at_grasp, -1.0, 1.0)
    # nothing to fetch now: wait over the tub, WAIT_LIFT above the carry height. Not at the carry height:
    # "still, hand open, at carry height right above a brick" then always means "descend", where a hand that
    # waited there over the mortaring brick for 40 s taught a student to wait above the pallet bricks too
    nothing = ~jnp.any(cand)
    wait = jnp.array([mortar[0], mortar[1], CARRY_Z + WAIT_LIFT])
    return (jnp.where(nothing, wait, fetch_goal), jnp.where(nothing, SPEED, fetch_speed),
            jnp.where(nothing, 1.0, fetch_grip))
