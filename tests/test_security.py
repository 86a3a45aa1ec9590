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
from rlrun.core.errors import CheckpointError, ConfigError
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


# ---- round two (issue 22): env ids, resolvers, env state attributes -----------------------
def _edit_config(run_dir, edit) -> None:
    import yaml

    path = run_dir / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))


@pytest.fixture
def planted_module(tmp_path, monkeypatch):
    """An importable module that leaves a marker when imported (as `this` prints the Zen)."""
    pkg = tmp_path / "planted"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "evil_envs.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(pkg))
    return marker


def test_a_saved_env_id_may_not_import_a_module_of_its_choosing(interrupted_ppo,
                                                                 planted_module):
    _edit_config(interrupted_ppo, lambda c: c["env"].update(id="evil_envs:CartPole-v1"))
    msg = _resume_error(interrupted_ppo)
    assert "env.id='evil_envs:CartPole-v1'" in msg and "module 'evil_envs'" in msg
    assert "env.id=evil_envs:CartPole-v1" in msg  # how to trust it, if the user does
    assert not planted_module.exists()


def test_rlrun_eval_refuses_the_same_env_id(interrupted_ppo, planted_module):
    from rlrun.eval import evaluate

    _edit_config(interrupted_ppo, lambda c: c["env"].update(id="evil_envs:CartPole-v1"))
    with pytest.raises(CheckpointError, match="module 'evil_envs'"):
        evaluate(interrupted_ppo, {"episodes": 1})
    assert not planted_module.exists()


def test_an_env_id_the_user_names_again_is_trusted(interrupted_ppo, planted_module):
    """The user's own module (PYTHONPATH=. rlrun env=gym env.id=my_envs:X): repeating the
    id on the resume command line trusts it; another id is refused."""
    _edit_config(interrupted_ppo, lambda c: c["env"].update(id="evil_envs:CartPole-v1"))
    with pytest.raises(CheckpointError, match="module 'evil_envs'"):  # not the saved id
        train(compose_cfg([f"resume={interrupted_ppo}"]), overrides=["env.id=CartPole-v1"])
    assert not planted_module.exists()
    results = train(compose_cfg([f"resume={interrupted_ppo}"]),
                    overrides=["env.id=evil_envs:CartPole-v1"])
    assert results["status"] == "completed" and planted_module.exists()


def test_env_id_on_resume_only_confirms_the_task(interrupted_ppo):
    with pytest.raises(ConfigError, match="keeps its task"):
        train(compose_cfg([f"resume={interrupted_ppo}"]), overrides=["env.id=Acrobot-v1"])


def test_plugin_and_config_modules_are_trusted():
    from rlrun.core.trust import module_trusted, trusted_modules

    trusted = trusted_modules()
    assert module_trusted("rlrun_reinforce.envs", trusted)  # an installed plugin's package
    assert module_trusted("rlrun.envs.tabular", trusted)
    assert not module_trusted("this", trusted) and not module_trusted("rlrunx", trusted)


@pytest.mark.parametrize("value", ["${rlrun_sqlite:%s/made/db.sqlite}",
                                   "${oc.env:HOME}", "x${rlrun_now:%%Y}"])
def test_a_saved_config_runs_no_resolver(tmp_path, interrupted_ppo, value):
    """A resolver runs before validation sees its result; rlrun_sqlite made folders."""
    value = value % tmp_path if "%s" in value else value.replace("%%", "%")
    _edit_config(interrupted_ppo, lambda c: c["algo"].update(gamma=value))
    msg = _resume_error(interrupted_ppo)
    assert "calls a resolver" in msg and "algo.gamma" in msg
    assert not (tmp_path / "made").exists()


def test_node_references_in_a_saved_config_still_resume(tmp_path, interrupted_ppo):
    _edit_config(interrupted_ppo, lambda c: c["env"].update(name="${.id}"))
    assert train(compose_cfg([f"resume={interrupted_ppo}"]))["status"] == "completed"


@pytest.mark.parametrize("attr,value,what", [
    ("_max_episode_steps", -1, "TimeLimit._max_episode_steps"),
    ("render_mode", "human", "render_mode"),
    ("gravity", 0.0, "CartPoleEnv.gravity"),
    ("state", np.zeros(7), "array"),
    ("steps_beyond_terminated", "x", "steps_beyond_terminated"),
])
def test_env_state_sets_only_what_an_episode_changes(interrupted_ppo, attr, value, what):
    path = interrupted_ppo / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    subs = state["loop"]["envs"]["envs"]["subs"]
    chain = subs["objects"][0]
    obj = chain[0] if attr == "_max_episode_steps" else chain[-1]
    obj[attr] = value
    save_checkpoint(path, state)
    msg = _resume_error(interrupted_ppo)
    assert what in msg
    assert read_results(interrupted_ppo)["status"] == "interrupted"


def test_error_lines_are_inert_in_a_terminal(capsys):
    """A value with ANSI escapes (from a command line or a run dir's config) is shown
    escaped: the terminal shows what was typed, and nothing repaints it."""
    from rlrun import cli
    from rlrun.core.escape import spreadsheet_safe, terminal_safe

    with pytest.raises(SystemExit) as e:
        cli.main(["algo.epsilon=\x1b[2J\x1b]0;x\x07\u202eevil"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "\\x1b[2J" in err and "\\u202e" in err
    assert terminal_safe("a\tb\nc") == "a\tb\nc"
    assert [spreadsheet_safe(c) for c in ("=1+1", "-1.5", "+x", "@SUM(A1)", "ok")] == \
        ["'=1+1", "-1.5", "'+x", "'@SUM(A1)", "ok"]
