"""A run dir from elsewhere must never run code when it is resumed (issue: crafted checkpoints).

The attack that worked against rlrun 0.1: the env state was a pickle checked by module prefix,
and protocol 4 resolves dotted names, so `find_class("rlrun.cli", "os.system")` reached
`os.system`. Env state is now plain data; these tests build such payloads and resume them.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rlrun.core.checkpoint import load_checkpoint, save_checkpoint
from rlrun.core.errors import CheckpointError
from rlrun.train import train

from .conftest import compose_cfg, interrupt, read_results

FAST = ["logger.progress=none", "threads=1", "env=CartPole-v1", "algo=ppo",
        "algo.total_steps=1024", "algo.eval_episodes=1", "algo.eval_every=0"]


def _evil_pickle(marker) -> bytes:
    """Protocol 4: STACK_GLOBAL with a dotted qualname, then REDUCE with a shell command."""
    def s(text: str) -> bytes:
        b = text.encode()
        return b"\x8c" + bytes([len(b)]) + b
    return (b"\x80\x04" + s("rlrun.cli") + s("os.system") + b"\x93"
            + s(f"touch {marker}") + b"\x85R.")


def test_the_payload_is_live(tmp_path):
    """The payload really runs its command with a plain unpickler (so the tests below can fail)."""
    marker = tmp_path / "pwned-plain"
    pickle.loads(_evil_pickle(marker))
    assert marker.exists()


@pytest.fixture
def interrupted_ppo(tmp_path, monkeypatch):
    return interrupt(tmp_path, monkeypatch, FAST, 300, "r")


def _resume_error(run_dir) -> str:
    with pytest.raises(CheckpointError) as e:
        train(compose_cfg([f"resume={run_dir}"]))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_a_pickled_env_state_is_refused_and_never_run(tmp_path, interrupted_ppo):
    marker = tmp_path / "pwned"
    path = interrupted_ppo / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    vec = state["loop"]["envs"]  # the training envs: sub-env state, statistics, observation
    assert vec["envs"]["format"] == "data-v1"  # no pickle in what rlrun writes
    blob = np.frombuffer(_evil_pickle(marker), dtype=np.uint8).copy()
    vec["envs"] = {"envs": blob, "returns": np.zeros(8), "lengths": np.zeros(8)}
    save_checkpoint(path, state)
    msg = _resume_error(interrupted_ppo)
    assert "env state" in msg and "format" in msg
    assert not marker.exists()


def test_a_raw_pickle_as_checkpoint_is_refused(tmp_path, interrupted_ppo):
    marker = tmp_path / "pwned-raw"
    (interrupted_ppo / "checkpoints" / "last.pt").write_bytes(_evil_pickle(marker))
    msg = _resume_error(interrupted_ppo)
    assert "unreadable" in msg
    assert not marker.exists()


@pytest.mark.parametrize("tamper", ["rng_name", "dunder_key", "other_env"])
def test_tampered_data_state_is_a_one_line_error(interrupted_ppo, tamper):
    path = interrupted_ppo / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    subs = state["loop"]["envs"]["envs"]["subs"]
    unwrapped = subs["objects"][0][-1]
    if tamper == "rng_name":
        unwrapped["_np_random"]["__np_random__"]["bit_generator"] = "os.system"
    elif tamper == "dunder_key":
        unwrapped["__class__"] = "x"
    else:
        subs["classes"][0][-1] = "PendulumEnv"
    save_checkpoint(path, state)
    _resume_error(interrupted_ppo)
    assert read_results(interrupted_ppo)["status"] == "interrupted"  # left as it was


@pytest.mark.parametrize("where", ["nested_target", "loop", "interpolated"])
def test_a_saved_config_that_names_other_code_is_refused(tmp_path, interrupted_ppo, where):
    """Hydra instantiates nested `_target_` nodes: a crafted config.yaml could call eval."""
    import yaml

    marker = tmp_path / "pwned-config"
    path = interrupted_ppo / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    if where == "nested_target":
        cfg["network"]["evil"] = {"_target_": "builtins.eval",
                                  "_args_": [f"__import__('os').system('touch {marker}')"]}
    elif where == "loop":
        cfg["algo"]["loop"] = "rlrun.cli.os.system"
    else:
        cfg["algo"]["schema"] = "${oc.env:EVIL_SCHEMA,rlrun.algos.ppo.PPOConfig}"
    path.write_text(yaml.safe_dump(cfg))
    msg = _resume_error(interrupted_ppo)
    assert "is not code that rlrun's configs name" in msg
    assert not marker.exists()
