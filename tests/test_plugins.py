"""Users' own algorithms, envs and networks without forking (docs/extending.md).

An installed plugin (entry point group `rlrun.plugins`; CI installs the example,
examples/rlrun-reinforce) adds options to `--help`, the pairing checks, tuned values and the
resume trust list. An unpackaged config dir works through `--config-dir` and
`hydra.searchpath`. Gymnasium's `module:EnvId` ids import their module.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from rlrun.core.errors import CheckpointError, ConfigError, PairingError
from rlrun.core.trust import check_references
from rlrun.preflight import algorithms_by_kind
from rlrun.train import train

from .conftest import compose_cfg, interrupt_and_resume, read_results, rlrun_cli, run_train

INSTALLED = any(ep.name == "reinforce"
                for ep in importlib.metadata.entry_points(group="rlrun.plugins"))
needs_plugin = pytest.mark.skipif(
    not INSTALLED, reason="the example plugin is not installed: pip install -e"
    " examples/rlrun-reinforce (CI installs it)")
ROOT = Path(__file__).resolve().parent.parent


# ---- an installed plugin -------------------------------------------------------------------
@needs_plugin
def test_help_lists_the_plugins_options(tmp_path):
    out = rlrun_cli(["--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    groups = {line.split(":")[0].strip(): line.split(":", 1)[1]
              for line in out.stdout.splitlines() if line.startswith("  ") and ":" in line}
    assert " reinforce," in groups["algo"]
    assert " corridor," in groups["env"]
    assert " linear, mlp," in " " + groups["network"].strip()  # the plugin's, among ours
    assert " ppo," in groups["algo"]  # ours are still there


@needs_plugin
def test_the_plugins_algorithm_takes_part_in_pairing(tmp_path):
    assert algorithms_by_kind()["reinforce"] == ("gym",)
    with pytest.raises(PairingError, match=r"algo=reinforce needs a Gymnasium task.*try algo="):
        run_train(tmp_path, ["algo=reinforce", "env=bandit_testbed"])
    with pytest.raises(PairingError, match=r"needs a discrete action space.*try algo=ppo"):
        run_train(tmp_path, ["algo=reinforce", "env=Pendulum-v1"], "p")
    # ...and our pairing hints may name it: a gym task's fit is any gym algorithm
    assert "gym" in algorithms_by_kind()["ppo"]


@needs_plugin
def test_the_plugins_tuned_values_apply_like_ours():
    cfg = compose_cfg(["algo=reinforce", "env=corridor"])
    assert cfg.algo.total_steps == 20000 and cfg.algo.eval_every == 5000  # tuned/reinforce/
    assert cfg.env.id == "rlrun_reinforce.envs:Corridor-v0"
    assert compose_cfg(["algo=reinforce", "env=corridor", "algo.total_steps=7"]) \
        .algo.total_steps == 7  # the command line wins
    assert compose_cfg(["algo=reinforce"]).env.name == "CartPole-v1"  # its default task


@needs_plugin
def test_a_plugins_code_is_trusted_on_resume_and_other_code_is_not():
    check_references({"algo": {"loop": "rlrun_reinforce.reinforce.run",
                               "schema": "rlrun_reinforce.schema.ReinforceConfig"},
                      "network": {"_target_": "rlrun_reinforce.nets.Linear"}}, "r")
    with pytest.raises(CheckpointError, match="is not code that"):
        check_references({"algo": {"loop": "rlrun_reinforce.os.system"}}, "r")


@needs_plugin
def test_gymnasium_module_id_form_runs_the_plugins_env(tmp_path):
    res = run_train(tmp_path, ["algo=reinforce", "env=gym",
                               "env.id=rlrun_reinforce.envs:Corridor-v0", "env.num_envs=2",
                               "algo.total_steps=300", "algo.eval_episodes=1", "threads=1"])
    assert res["status"] == "completed" and res["steps"] >= 300
    assert res["env"] == "rlrun_reinforce.envs:Corridor-v0"
    assert res["metrics"]["eval/length"]["last"] <= 400


@needs_plugin
def test_our_algorithms_run_on_the_plugins_env_and_resume_exactly(tmp_path, monkeypatch):
    """PPO carries Corridor episodes across updates: the env's plain attributes (its cell,
    its generator) are saved mid-episode and restored."""
    args = ["threads=1", "checkpoint_every_s=0", "deterministic=true", "algo=ppo",
            "env=corridor", "env.kwargs.slip=0.2", "env.num_envs=2", "algo.num_steps=64",
            "algo.total_steps=768", "network.hidden_sizes=[16]",
            "algo.eval_every=256", "algo.eval_episodes=1"]
    a = run_train(tmp_path, args, "a")
    b = interrupt_and_resume(tmp_path, monkeypatch, args, 300)
    for r in (a, b):
        r["metrics"].pop("charts/SPS")
    assert b["metrics"] == a["metrics"] and a["env"] == "corridor"


# ---- module:EnvId without any plugin ---------------------------------------------------------
def test_module_env_id_imports_the_module_and_a_missing_one_is_one_line(tmp_path, monkeypatch):
    from rlrun.envs.gym import make_env
    from rlrun.rl.evaluation import Evaluator
    from rlrun.schemas.gym import GymEnvConfig

    (tmp_path / "tmp_walk_envs.py").write_text(textwrap.dedent("""
        import gymnasium
        gymnasium.register(id="TmpWalk-v0", max_episode_steps=7,
                           entry_point="gymnasium.envs.classic_control:CartPoleEnv")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = GymEnvConfig(id="tmp_walk_envs:TmpWalk-v0")
    assert "tmp_walk_envs" in sys.modules
    env = make_env(cfg)
    assert env.spec.max_episode_steps == 7
    env.close()
    ev = Evaluator(cfg, 0, 1, False)
    assert ev.run(lambda o: [0] * len(o), _Sink(), 0) <= 7
    ev.close()
    with pytest.raises(ConfigError) as e:
        GymEnvConfig(id="no_such_module_here:TmpWalk-v0")
    assert "module 'no_such_module_here' cannot be imported" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not a registered Gymnasium env .after importing"):
        GymEnvConfig(id="tmp_walk_envs:NoSuchWalk-v0")


class _Sink:
    def scalar(self, *a) -> None:
        pass


# ---- an unpackaged config dir ----------------------------------------------------------------
@pytest.fixture
def in_process_cli(monkeypatch):
    """`rlrun.cli.main` in this process; Hydra's job logging (handlers on pytest's captured
    streams) is taken off the root logger afterwards."""
    from rlrun.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "argv", ["rlrun"])  # main() sets it; restored after the test
    yield main
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def _user_dir(tmp_path: Path) -> Path:
    """A config dir and a module of the user's own, outside any package: an algorithm
    `my_ucb` whose loop and schema live in my_algos.py (here they wrap rlrun's UCB)."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_algos.py").write_text(
        "from rlrun.algos.bandits import UCBConfig as MyUCBConfig\n"
        "from rlrun.algos.bandits import run\n")
    conf = tmp_path / "conf"
    (conf / "algo").mkdir(parents=True)
    (conf / "algo" / "my_ucb.yaml").write_text(textwrap.dedent("""
        name: my_ucb
        loop: my_algos.run
        schema: my_algos.MyUCBConfig
        c: 2.0
    """))
    return conf


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_an_unpackaged_config_dir_works(tmp_path, monkeypatch, in_process_cli, how):
    main = in_process_cli
    conf = _user_dir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    where = ["--config-dir", str(conf)] if how == "--config-dir" \
        else [f"hydra.searchpath=[file://{conf}]"]
    run = tmp_path / "run"
    main([*where, "algo=my_ucb", "env.num_runs=20", "env.steps=30", "logger.progress=none",
          f"hydra.run.dir={run}"])
    assert read_results(run)["algo"] == "my_ucb"
    # a resume that names the dir again trusts its code; one that does not, does not
    main([*where, f"resume={run}", "env.steps=40", "logger.progress=none"])
    assert read_results(run)["steps"] == 40
    with pytest.raises(CheckpointError, match="algo.loop='my_algos.run' is not code that"):
        train(compose_cfg([f"resume={run}"]), overrides=["env.steps=50"])


def test_help_lists_an_unpackaged_dirs_options(tmp_path, capsys, in_process_cli):
    main = in_process_cli
    conf = _user_dir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["--help", "--config-dir", str(conf)])
    assert e.value.code == 0
    algo_line = next(ln for ln in capsys.readouterr().out.splitlines()
                     if ln.startswith("  algo:"))
    assert " my_ucb," in algo_line and " ucb" in algo_line


def test_a_broken_plugin_is_one_line_naming_it(tmp_path, monkeypatch):
    from rlrun.core import plugins

    info = tmp_path / "bad_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rlrun.plugins]\nbad = no_such_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.plugin_config_dirs.cache_clear()
    try:
        with pytest.raises(plugins.PluginError) as e:
            plugins.plugin_config_dirs()
        assert "plugin 'bad'" in str(e.value) and "uninstall bad-plugin" in str(e.value)
        assert "\n" not in str(e.value)
    finally:
        monkeypatch.undo()
        plugins.plugin_config_dirs.cache_clear()


@pytest.mark.parametrize("value", ["my_cfg_plugin", "my_cfg_plugin:config_dir",
                                   "my_cfg_plugin:CONFIG_PATH_STR"])
def test_an_entry_point_may_name_a_module_a_function_or_a_path(tmp_path, monkeypatch, value):
    from rlrun.core import plugins

    conf = _user_dir(tmp_path)
    (tmp_path / "my_cfg_plugin.py").write_text(
        f"CONFIG_DIR = {str(conf)!r}\nCONFIG_PATH_STR = CONFIG_DIR\n"
        "def config_dir():\n    return CONFIG_DIR\n")
    info = tmp_path / "my_cfg_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-cfg-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[rlrun.plugins]\nmine = {value}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    plugins.plugin_config_dirs.cache_clear()
    try:
        assert ("mine", conf.resolve()) in plugins.plugin_config_dirs()
        assert compose_cfg(["algo=my_ucb"]).algo.loop == "my_algos.run"
        assert algorithms_by_kind()["my_ucb"] == ("bandit",)
    finally:
        monkeypatch.undo()
        plugins.plugin_config_dirs.cache_clear()
        for name in ("my_cfg_plugin", "my_algos"):  # the next case writes its own
            sys.modules.pop(name, None)
