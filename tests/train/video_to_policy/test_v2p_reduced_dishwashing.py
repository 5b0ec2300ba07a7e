"""The documented "reduced dishwashing" task and its renderer (no JAX compile: cheap enough for the default suite)."""

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="module")
def reduced_task():
    pytest.importorskip("mujoco")
    from train.video_to_policy import sim

    return sim.get_task("dishwashing_reduced")


def test_reduced_dishwashing_settings(reduced_task):
    from train.video_to_policy import sim

    p = reduced_task.env.default_params
    assert reduced_task.name == "dishwashing_reduced" and reduced_task.env.episode_length == 400
    assert float(p.washing_time) == pytest.approx(2.0)
    # the human reference keeps the seed's 20 s of handling a dish and p·MPₕ = wₕ
    assert float(p.econ.human_mp) == pytest.approx(3600.0 / 22.0, rel=1e-5)
    assert float(p.econ.price_per_unit * p.econ.human_mp) == pytest.approx(float(p.econ.human_wage), rel=1e-5)
    full = sim.get_task("dishwashing", episode_length=10).env.default_params
    assert float(full.washing_time) == pytest.approx(40.0) and float(full.econ.human_mp) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="washing_time"):
        sim.reduced_dishwashing_overrides(washing_time=0.0)


def test_frame_renderer_shapes_and_content(reduced_task):
    import mujoco

    from train.video_to_policy import sim

    m = reduced_task.env.mj_model
    q = np.tile(m.qpos0, (2, 1))
    r = sim.FrameRenderer(m, 32, "overview")
    f = r(q)
    assert f.shape == (2, 32, 32, 3) and f.dtype == np.uint8 and f.std() > 5  # a scene, not a blank frame
    np.testing.assert_array_equal(f[0], f[1])  # same pose -> same frame (deterministic renderer)
    # moving the right arm's first joint changes the picture
    q2 = q.copy()
    q2[1, reduced_task.env.robot.robot_qpos[1]] += 0.5
    f2 = r(q2)
    assert np.abs(f2[1].astype(int) - f2[0].astype(int)).sum() > 0
    assert not r.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW]
