"""The dishwashing task's scripted expert (registered with the task in envs/__init__.py)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mujoco

from envs.experts import Policy, goal_policy, require_right_arm
from envs.robot import FINGER_OPEN

# Motion parameters of the dishwashing expert: careful human-like speeds.
SPEED = 0.30  # m/s of the commanded grasp point in free motion
SLOW = 0.10  # m/s when descending onto a dish or into a rack slot
HOVER_Z = 1.00  # m, carry height of the grasp point (dish bottom ~10 cm above the counter)
GRASP_DZ = 0.0  # m, grasp point above the dish centre (4 mm below it spat dishes out upward)
# Grasping (tuned on 16 robots x 240 s with domain randomization: at the previous settings 3 robots in
# 16 spat dishes out of the pinch, 10 errors on one robot). The fingers touch an 8 cm dish at a slide of
# TOUCH_Q; until then the servo target leads the fingers by CLOSE_LEAD per step (a slow approach: a
# hard impact flung dishes), then GRIP_CLOSE (fully shut: ~11 N per finger, a firm squeeze; a gentle
# 2-4 N grip let dishes creep out during the carry). The hand closes only when centred on the dish to
# within GRASP_XY_TOL: an off-centre pinch squeezes the round dish out sideways.
GRIP_CLOSE = -1.0  # action units: -1 = fingers shut, 1 = open
CLOSE_LEAD = 0.006  # m of finger slide per control step while approaching the dish
TOUCH_Q = 0.036  # m, finger slide at which the fingers touch an 8 cm dish (0.04 + 0.008 - 0.012)
GRASP_XY_TOL = 0.005  # m
# joint mode: the IK target runs this far ahead of the hand (position servos holding a dish sag short
# of a target only one step ahead: the hand stalled 4 cm above the rack slot)
JOINT_LEAD = 0.03  # m
REACH_XY = 0.47  # m, horizontal distance from the right shoulder beyond which a dish is out of reach (~0.45 m at counter height)


class _Layout(NamedTuple):
    """The env's fixed geometry the expert reads, gathered once per env."""

    sink: jax.Array  # [3] wash zone centre
    slots: jax.Array  # [S, 3] rack slots
    rest_z: jax.Array  # [N] resting height of each dish's centre
    finger_dof: jax.Array
    arm_dof: jax.Array
    shoulder: int  # body id of the right shoulder (the reach limit)
    home: jax.Array  # [3] the grasp point's home pose (where the hand waits)


class _Scene(NamedTuple):
    """One step's view of the dishes and the hand, shared by :func:`_carry` and :func:`_fetch`."""

    data: Any  # the mjx Data
    ee: jax.Array  # [3] grasp point
    pos: jax.Array  # [N, 3] dish centres
    held: jax.Array  # [N] bool
    washed: jax.Array  # [N] bool
    height: jax.Array  # [N] above the dish's resting height
    slot_d: jax.Array  # [N, S] xy distance of each dish to each slot
    in_slot: jax.Array  # [N] bool
    q: jax.Array  # [] mean finger slide
    close: jax.Array  # [] the closing grip command


def dishwashing_expert(env) -> Policy:
    """Phase machine for the right arm of :class:`envs.dishwashing.Dishwashing`.

    Pick the first dirty dish (a washed loose dish first) by pinching it at its equator, wait until
    the fingers stopped closing, lift it, hold it in the wash zone until washed, carry it to a free
    rack slot, lower it gently and let go, rise, repeat. Works in the
    ``ee_delta`` mode (any ``arms`` that include the right arm) and the ``joint`` mode (the expert
    runs the same IK the env uses and outputs joint targets).

    Stateless: each step it reads the scene (:func:`_see`), computes both branches, carrying the
    held dish (:func:`_carry`) and fetching the next one (:func:`_fetch`), and selects one by
    whether a dish is in the hand; so it jits, vmaps and scans.
    """
    require_right_arm(env, "dishwashing expert")
    r = env.robot
    shoulder = mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_BODY, "right_shoulder")
    if shoulder < 0:
        raise ValueError("dishwashing expert: the env's model has no body 'right_shoulder' (its reach limit needs it)")
    lay = _Layout(sink=jnp.asarray(env.sink_center), slots=jnp.asarray(env.slots), rest_z=jnp.asarray(env.dish_rest_z),
                  finger_dof=jnp.asarray(r.finger_dof[0]), arm_dof=jnp.asarray(r.arm_dof[0]), shoulder=shoulder,
                  home=jnp.asarray(env.home_ee[0]))

    def goal_and_grip(state, params):
        sc = _see(env, lay, state, params)
        carry, fetch = _carry(lay, sc, params), _fetch(lay, sc)
        any_held = jnp.any(sc.held)
        return tuple(jnp.where(any_held, c, f) for c, f in zip(carry, fetch))

    return goal_policy(env, goal_and_grip, joint_lead=JOINT_LEAD)


def _see(env, lay: _Layout, state, params) -> _Scene:
    data = state.pipeline_state
    info = state.info
    r = env.robot
    ee = data.site_xpos[r.grasp_site[0]]
    pos, _ = env._dish_state(data)  # [N, 3]
    # "in hand" from geometry, not from contacts: a dish near the grasp point while the
    # fingers are closed on it. A momentary loss of one finger contact then never opens the hand.
    fingers = data.qpos[r.finger_qpos[0]]
    closed = jnp.all(fingers < 0.042)
    near = jnp.linalg.norm(pos - ee[None, :], axis=-1) < 0.025
    held = ((info["held"] > 0) | (near & closed)) & near
    slot_d = jnp.linalg.norm(pos[:, None, :2] - lay.slots[None, :, :2], axis=-1)
    # the closing command: until the fingers are about to touch the dish the servo target leads them by
    # CLOSE_LEAD (a slow approach: a hard impact can fling the dish), then GRIP_CLOSE (a firm squeeze).
    q = jnp.mean(fingers)
    to_action = lambda x: 2.0 * x / FINGER_OPEN - 1.0  # noqa: E731
    close = jnp.where(q > TOUCH_Q + 0.002, to_action(q - CLOSE_LEAD), GRIP_CLOSE)
    return _Scene(data=data, ee=ee, pos=pos, held=held, washed=info["washed"] > 0, height=pos[:, 2] - lay.rest_z,
                  slot_d=slot_d, in_slot=jnp.min(slot_d, axis=-1) < params.slot_tolerance, q=q, close=close)


def _carry(lay: _Layout, sc: _Scene, params) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(goal, speed, grip) while carrying dish i: to the wash zone, then washed, to a free rack slot.

    Soft contacts let a pinched dish creep down slowly, so the expert carries it low (5 cm) and
    fast, and washes it resting on the sink floor while holding it.
    """
    ee, pos, held, washed, height = sc.ee, sc.pos, sc.held, sc.washed, sc.height
    i = jnp.argmax(held)
    p_i = pos[i]
    off = ee - p_i  # where the dish sits in the hand
    carry_z = lay.rest_z[i] + 0.05 + off[2]
    # at the sink or the slot the hand goes to its pick height (the dish's equator when it rests on
    # the counter), a fixed goal: a goal relative to where the dish sits in the hand ratchets, because
    # a resting dish slips in the pinch as the hand moves and the goal follows the slip (seen: the hand
    # slid up off a dish in the sink, or down to the counter)
    down_z = lay.rest_z[i] + GRASP_DZ
    # the slot: the first slot no other dish occupies
    occupied = jnp.any((sc.slot_d < 0.06) & ~held[:, None], axis=0)  # [S]
    s = jnp.argmin(jnp.where(occupied, 1e3, jnp.arange(lay.slots.shape[0])))
    dest_xy = jnp.where(washed[i], lay.slots[s, :2], lay.sink[:2])
    dest_err = jnp.linalg.norm(p_i[:2] - dest_xy)
    at_dest = dest_err <= 0.012
    low = height[i] < 0.035
    carry_goal = jnp.where(
        at_dest,
        jnp.concatenate([p_i[:2], down_z[None]]),  # hold the hand centred on the resting dish
        jnp.where(
            low & (dest_err > 0.03),
            jnp.concatenate([ee[:2], carry_z[None]]),
            jnp.concatenate([dest_xy + off[:2], carry_z[None]]),
        ),
    )
    carry_speed = jnp.where(at_dest | (low & (dest_err > 0.03)), SLOW, SPEED)
    # a dirty dish still on the counter is lifted only once the fingers stopped closing on it:
    # lifting a dish the fingers are still squeezing can spit it out (seen on 1 robot in 8)
    settling = (height[i] < 0.005) & (jnp.max(jnp.abs(sc.data.qvel[lay.finger_dof])) > 0.01)
    # (the hand stays centred on the dish meanwhile: a hand drifting while the fingers close pushes
    # the dish out of the pinch sideways)
    carry_goal = jnp.where(settling, p_i + jnp.array([0.0, 0.0, GRASP_DZ]), carry_goal)
    # let go once the dish rests on the counter (its friction keeps it in the slot), or once the hand is
    # down and the dish is within 1.5 cm of the counter (a dish that turned in the pinch stands on its rim)
    release = washed[i] & at_dest & ((height[i] < 0.004) | ((ee[2] < down_z + 0.012) & (height[i] < 0.015)))
    # once the fingers are opening on a washed dish in its slot, they keep opening: a released dish
    # shifts a few mm, and closing again on it (at_dest flips) kicked it out of the slot
    opening = sc.q > TOUCH_Q + 0.001
    release = release | (washed[i] & opening & (dest_err < params.slot_tolerance) & (height[i] < 0.015))
    return carry_goal, carry_speed, jnp.where(release, 1.0, sc.close)


def _fetch(lay: _Layout, sc: _Scene) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(goal, speed, grip) with empty hands: washed loose dishes first, then the first dirty dish not in a slot.

    A dish knocked beyond the arm's reach is left where it lies: reaching for it would stall the work.
    """
    ee, pos, data = sc.ee, sc.pos, sc.data
    reachable = jnp.linalg.norm(pos[:, :2] - data.xpos[lay.shoulder, :2], axis=-1) < REACH_XY
    loose = ~sc.held & ~sc.in_slot & (sc.height < 0.05) & reachable
    prio = jnp.where(loose & sc.washed, 0, jnp.where(loose, 1, 2)) * 10 + jnp.arange(pos.shape[0])
    j = jnp.argmin(prio)
    p_j = pos[j]
    xy_err = jnp.linalg.norm(ee[:2] - p_j[:2])
    hover = jnp.array([p_j[0], p_j[1], HOVER_Z])
    grasp_pt = jnp.array([p_j[0], p_j[1], p_j[2] + GRASP_DZ])  # at the equator
    rise = jnp.array([ee[0], ee[1], HOVER_Z])
    too_low = (ee[2] < HOVER_Z - 0.03) & (xy_err > 0.03)
    # descend once within 8 mm of the dish in xy; keep descending (and centring) while within 2 cm,
    # so that a small xy error during the descent does not send the hand back up (a limit cycle)
    descending = (xy_err <= 0.008) | ((ee[2] < HOVER_Z - 0.02) & (xy_err <= 0.02))
    fetch_goal = jnp.where(too_low, rise, jnp.where(descending, grasp_pt, hover))
    fetch_speed = jnp.where(too_low | ~descending, SPEED, SLOW)
    # close only when centred: an off-centre pinch squeezes the round dish out sideways
    # (or within 1.2 cm once the arm has stopped: near the edge of its reach it may not centre better)
    stalled = jnp.max(jnp.abs(data.qvel[lay.arm_dof])) < 0.02
    at_grasp = ((xy_err <= GRASP_XY_TOL) | ((xy_err <= 0.012) & stalled)) & (jnp.abs(ee[2] - grasp_pt[2]) < 0.006)
    fetch_grip = jnp.where(at_grasp, sc.close, 1.0)
    nothing = jnp.min(prio) >= 20  # no dish to fetch: wait at the hover pose
    return jnp.where(nothing, lay.home, fetch_goal), fetch_speed, fetch_grip
