"""The plugin's tests, as a plugin author writes them, with `rlrun.testing`: compose configs
the way `rlrun` does (this package's config dir joins rlrun's through its entry point), run
the loop in a temp dir, stop it as Ctrl-C would, resume it, and compare.

    pip install -e examples/rlrun-reinforce && pytest examples/rlrun-reinforce/tests
    pytest -m slow examples/rlrun-reinforce/tests      # the CartPole learning check
"""

from __future__ import annotations

import importlib.metadata

import gymnasium
import numpy as np
import pytest

if not any(ep.name == "reinforce" for ep in importlib.metadata.entry_points(group="rlrun.plugins")):
    pytest.skip("rlrun-reinforce is not installed: pip install -e examples/rlrun-reinforce",
                allow_module_level=True)

import torch  # noqa: E402 - after the skip above
from rlrun_reinforce.reinforce import returns_to_go  # noqa: E402
from rlrun_reinforce.schema import ReinforceConfig  # noqa: E402

from rlrun import testing  # noqa: E402

# A few seconds: 4 episodes per update on the Corridor, evaluations along the way.
FAST = ["algo=reinforce", "env=corridor", "env.num_envs=4", "algo.total_steps=3000",
        "algo.eval_every=1000", "algo.eval_episodes=2", "deterministic=true", "threads=1"]


def compose_cfg(overrides: list[str]):
    return testing.compose(overrides)


def run(tmp_path, overrides: list[str], name: str = "run") -> dict:
    return testing.run(tmp_path, ["threads=1", *overrides], name)


def test_the_schema_is_registered_and_declares_its_objective():
    """Declared once (schema.py): the composed node is the structured config with every
    default, and the spec says which way the objective goes."""
    node = compose_cfg(["algo=reinforce"]).algo
    assert node.schema == "rlrun_reinforce.schema.ReinforceConfig"
    assert node.learning_rate == ReinforceConfig.learning_rate == 5e-3
    assert ReinforceConfig.spec.goal == "max" and ReinforceConfig.spec.task_kinds == ("gym",)


def test_corridor_rewards_the_shortest_walk():
    env = gymnasium.make("rlrun_reinforce.envs:Corridor-v0")
    obs, _ = env.reset(seed=0)
    assert obs.argmax() == 0 and env.spec.max_episode_steps == 400
    obs, r, term, _, _ = env.step(0)  # the wall: stay
    assert obs.argmax() == 0 and r == pytest.approx(-0.01) and not term
    total, steps, term = 0.0, 0, False
    while not term:
        obs, r, term, trunc, _ = env.step(1)
        total, steps = total + r, steps + 1
    assert steps == 9 and total == pytest.approx(0.92) and obs.argmax() == 9
    assert env.render() is None
    env.close()


def test_returns_to_go():
    g = returns_to_go(torch.tensor([[1.0], [0.0], [2.0]]), 0.5)
    assert g.squeeze(1).tolist() == [1.5, 1.0, 2.0]


def test_a_short_run_learns_the_corridor_and_logs_what_rlrun_expects(tmp_path):
    res = run(tmp_path, FAST)
    assert res["status"] == "completed" and res["steps"] >= 3000
    m = res["metrics"]
    for tag in ("charts/episodic_return", "losses/policy", "losses/value", "losses/entropy"):
        assert tag in m
    assert res["objective"] == m["eval/return"]["last"]
    assert m["eval/return"]["last"] == pytest.approx(0.92)  # the shortest walk, 9 steps
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_rlrun_eval_replays_a_run_through_the_load_policy_hook(tmp_path):
    from rlrun.eval import evaluate

    res = run(tmp_path, [*FAST, "network=linear", "algo.total_steps=1500"])
    rec = evaluate(tmp_path / "run")  # what `rlrun-eval RUN_DIR` does
    assert rec["return_mean"] == res["metrics"]["eval/return"]["last"]  # its last evaluation
    assert len(rec["episodes"]) == 2 and rec["settings"]["deterministic"] is True
    assert len(evaluate(tmp_path / "run", {"episodes": 3, "deterministic": False})
               ["episodes"]) == 3
    rec = evaluate(tmp_path / "run", {"video": True, "episodes": 1})  # Corridor renders
    assert (tmp_path / "run" / rec["video"]).read_bytes()[:3] == b"GIF"


def test_without_the_hook_rlrun_eval_says_what_to_define(tmp_path, monkeypatch):
    import rlrun_reinforce.reinforce as module

    from rlrun.core.errors import ConfigError
    from rlrun.eval import evaluate

    run(tmp_path, [*FAST, "algo.total_steps=300", "algo.eval_episodes=1"])
    monkeypatch.delattr(module, "load_policy")
    with pytest.raises(ConfigError, match=r"algo=reinforce has no policy to replay"
                                          r" \(rlrun_reinforce.reinforce defines no load_policy"):
        evaluate(tmp_path / "run")


def test_the_linear_network_is_a_tabular_softmax_policy(tmp_path):
    res = run(tmp_path, [*FAST, "network=linear", "algo.total_steps=1500"])
    assert res["metrics"]["eval/return"]["last"] == pytest.approx(0.92)


def test_interrupt_and_resume_is_exact(tmp_path):
    """Stopped as Ctrl-C would at step >= 1200, then resumed: the same numbers as a run that
    was never stopped (rlrun.testing: no internals patched)."""
    stopped = testing.interrupt(tmp_path, FAST, stop=1200, name="interrupted")
    resumed = testing.resume(stopped)
    full = testing.run(tmp_path, FAST, "full")
    assert resumed["status"] == "completed" and resumed["steps"] == full["steps"]
    assert resumed["metrics"] == full["metrics"]  # exactly the same numbers
    testing.assert_same_state(stopped, tmp_path / "full")  # every tracked tensor


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_learns_cartpole(tmp_path, seed):
    """The plain command, `rlrun algo=reinforce env=CartPole-v1` (tuned values): eval return
    far above a random policy's ~20 (about 20-30 s on one loaded CPU core)."""
    res = run(tmp_path, ["algo=reinforce", "env=CartPole-v1", f"seed={seed}"])
    assert res["metrics"]["eval/return"]["last"] >= 300
    assert np.isfinite(res["metrics"]["losses/value"]["last"])
