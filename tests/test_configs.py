"""Every config composes, and every algo/env config validates against its schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlrun.core.config import config_dir, import_object, validate
from rlrun.core.errors import ConfigError
from rlrun.core.logger import LoggerConfig

from .conftest import compose_cfg

CONFIGS = config_dir()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["algo", "env", "network", "device", "logger"])
def test_every_option_composes(group):
    assert options(group), f"configs/{group} is empty"
    for option in options(group):
        cfg = compose_cfg([f"{group}={option}"])
        assert cfg[group] is not None


def test_a_compose_shares_the_config_store_and_leaves_it_as_it_was():
    """Hydra deep-copies its repository per compose; the ConfigStore inside is shared, not
    copied (13 ms a copy), and a compose with overrides of schema fields does not change it."""
    import copy

    from hydra.core.config_store import ConfigStore

    compose_cfg([])
    store = ConfigStore.instance()
    assert copy.deepcopy(store) is store
    before = OmegaConf.to_yaml(store.load("schema/algo/sac.yaml").node)
    cfg = compose_cfg(["algo=sac", "algo.batch_size=7", "algo.gamma=0.5"])
    assert cfg.algo.batch_size == 7
    assert OmegaConf.to_yaml(store.load("schema/algo/sac.yaml").node) == before
    assert compose_cfg(["algo=sac"]).algo.batch_size != 7


@pytest.mark.parametrize("algo", options("algo"))
def test_algo_configs_validate(algo):
    from rlrun.core.schema import spec_of

    node = compose_cfg([f"algo={algo}"]).algo
    assert node.name == algo
    import_object(node.loop, "loop")
    schema = import_object(node.schema, "schema")
    validate(node, schema, "algo")
    assert spec_of(schema).goal in ("max", "min")


@pytest.mark.parametrize("env", options("env"))
def test_env_configs_validate(env):
    node = compose_cfg([f"env={env}"]).env
    # env=gym runs any registered id and names its runs after that id
    assert node.name == (node.id if env == "gym" else env)
    validate(node, import_object(node.schema, "schema"), "env")


@pytest.mark.parametrize("network", options("network"))
def test_network_configs_validate(network):
    from rlrun.schemas.networks import network_schema

    node = compose_cfg([f"network={network}"]).network
    schema = network_schema(node._target_)
    assert schema is not None, f"network={network}: no schema registered for {node._target_}"
    validate(node, schema, "network")


def test_network_schemas_are_their_constructors_arguments():
    """Each network schema lists its class's arguments but the shapes the loops pass, with
    the defaults the class itself has (a direct call builds what the config builds)."""
    import dataclasses
    import inspect

    from rlrun.schemas import networks

    # what the loops pass from the task and data (n_classes: a class-conditional UNet's labels)
    shapes = {"in_dim", "out_dim", "vocab_size", "lm_head", "in_channels", "image_size",
              "n_classes"}
    for schema in (networks.MLPConfig, networks.NatureCNNConfig, networks.UNetConfig,
                   networks.TransformerConfig):
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING
                    else f.default_factory() for f in dataclasses.fields(schema)}
        params = inspect.signature(import_object(defaults.pop("_target_"), "t")).parameters
        assert set(params) - set(defaults) <= shapes, schema
        for name, default in defaults.items():
            own = params[name].default
            assert (list(own) if isinstance(own, tuple) else own) == default, (schema, name)


def test_logger_config_validates():
    cfg = validate(compose_cfg([]).logger, LoggerConfig, "logger")
    assert cfg == LoggerConfig()  # the YAML sets nothing the dataclass does not default
    with pytest.raises(ConfigError, match="logger.progress='bogus'"):
        validate(compose_cfg(["logger.progress=bogus"]).logger, LoggerConfig, "logger")


def experiments() -> list[str]:
    root = CONFIGS / "experiment"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.glob("*/*.yaml"))


@pytest.mark.parametrize("experiment", experiments())
def test_presets_compose_with_every_sweep_point(experiment):
    """Compose each job a preset's sweep would launch (a grid or a list of curve configs)."""
    assert compose_cfg([f"experiment={experiment}"]).algo.name
    raw = OmegaConf.load(CONFIGS / "experiment" / f"{experiment}.yaml")
    if "hydra" not in raw:  # a single-run preset (e.g. ddpm/digits): its one job validates
        job = compose_cfg([f"experiment={experiment}"])
        validate(job.algo, import_object(job.algo.schema, "schema"), "algo")
        return
    sweep = OmegaConf.to_container(raw.hydra.sweeper.params)
    assert sweep, f"{experiment} is meant to be a sweep"
    for key, values in sweep.items():
        if str(values).startswith("glob("):
            pattern = str(values)[5:-1]
            group = key.lstrip("+")
            values = ",".join(sorted(p.stem for p in (CONFIGS / group).glob(f"{pattern}.yaml")))
        for value in str(values).split(","):
            job = compose_cfg([f"experiment={experiment}", f"{key}={value}"])
            validate(job.algo, import_object(job.algo.schema, "schema"), "algo")


def test_help_lists_groups(tmp_path):
    from .conftest import rlrun_cli

    out = rlrun_cli(["--help"], cwd=tmp_path)
    assert out.returncode == 0
    for line in ("algo: a2c, ddpg, ddpm, double_q_learning, dqn, epsilon_greedy, expected_sarsa",
                 "device: auto, cpu, cuda", "env: ", "logger: tensorboard", "network: ",
                 "mlp, mlp_small, nature_cnn",  # after any installed plugin's (linear)
                 "experiment: ", "sutton_barto/ex6_2, sutton_barto/fig2_2", "resume"):
        assert line in out.stdout
    assert "fig2_6_ucb_" not in out.stdout  # single curves of presets are not options to pick
    assert not list(Path(tmp_path).iterdir()), "--help must not create run dirs"


@pytest.mark.parametrize("algo, env", [("q_learning", "cliff_walking_book"),
                                       ("sarsa", "windy_gridworld"),
                                       ("double_q_learning", "maximization_bias"),
                                       ("td0", "random_walk"), ("ucb", "bandit_testbed")])
def test_each_algorithm_brings_its_usual_task_and_env_overrides_win(algo, env):
    assert compose_cfg([f"algo={algo}"]).env.name == env
    assert compose_cfg([f"algo={algo}", "env=Taxi-v4"]).env.name == "Taxi-v4"


def _group_files(group: str) -> list[Path]:
    from rlrun.core.plugins import config_dirs

    return sorted(p for d in config_dirs() for p in (d / group).glob("*.yaml"))


def _schema_node(raw: dict) -> str | None:
    """The `schema/<group>/<name>` a config file names at the head of its defaults list."""
    for item in raw.get("defaults", []) or []:
        if isinstance(item, str) and item.startswith("/schema/"):
            return item.split("@")[0].lstrip("/")
    return None


@pytest.mark.parametrize("group", ["algo", "env", "network"])
def test_a_default_is_written_once(group):
    """Each config file of a group names its schema (the dataclass in Hydra's ConfigStore,
    which holds every default and its help) and repeats none of its defaults: YAML holds
    wiring, tuned values and presets."""
    import yaml
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    repeats, unnamed = [], []
    for path in _group_files(group):
        raw = yaml.safe_load(path.read_text()) or {}
        node_name = _schema_node(raw)
        if node_name is None:
            unnamed.append(path.name)
            continue
        base = OmegaConf.to_container(store.load(f"{node_name}.yaml").node)
        for key, value in raw.items():
            if key not in ("defaults", "name", "loop", "kind", "_target_") and key in base \
                    and base[key] == value:
                repeats.append(f"{path.parent.name}/{path.name}: {key}={value!r}")
    assert not unnamed, f"config files that name no schema: {unnamed}"
    assert not repeats, f"defaults written twice (drop them from the YAML): {repeats}"


def test_every_setting_has_help_and_schemas_are_torch_free():
    """The help text `rlrun --help algo=...` shows is declared on every field, and the schema
    modules import neither torch nor Gymnasium (they load at CLI start-up)."""
    import dataclasses
    import subprocess
    import sys

    from rlrun.core.schema import META_FIELDS, registered

    missing = [f"{path}.{f.name}" for path, cls in registered().items()
               for f in dataclasses.fields(cls)
               if f.name not in META_FIELDS and not (f.metadata or {}).get("help")]
    assert not missing, missing
    code = ("import sys; from rlrun.schemas import register_all; register_all(); "
            "print(sorted(m for m in ('torch', 'gymnasium') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_help_lists_every_setting_of_the_chosen_algorithm(capsys):
    from rlrun import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["--help", "algo=ucb", "env=contextual_bandit"])
    out = capsys.readouterr().out
    assert e.value.code in (0, None)
    assert "algo=ucb (rlrun.schemas.bandits.UCBConfig)" in out
    assert "algo.c: float = 2.0" in out and "exploration weight c" in out and "[>= 0]" in out
    assert "algo.step_size: float | null = null" in out
    assert "env.contexts: int = 1 (now 4)" in out  # the composed value, where it differs


def test_a_schema_that_does_not_declare_its_objective_direction_is_refused():
    """A plugin that leaves out the direction gets an error when it loads, not a "best"
    perplexity that is the maximum."""
    from dataclasses import dataclass

    from rlrun.core.schema import AlgoSchema, AlgoSpec, SchemaError, opt, register

    with pytest.raises(TypeError, match="goal"):
        AlgoSpec(task_kinds=("text",), objective="eval/val_ppl")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="goal='up'"):
        AlgoSpec(task_kinds=("text",), objective="eval/val_ppl", goal="up")

    @dataclass
    class NoSpec(AlgoSchema):
        lr: float = opt(1e-3, "learning rate", gt=0)

    with pytest.raises(SchemaError, match="declares no `spec"):
        register("algo", "no_spec", NoSpec)
    spec = AlgoSpec(task_kinds=("text",), objective="eval/val_ppl", goal="min")
    assert "eval/val_ppl" in spec.minimize  # a min objective's best is its minimum


def test_bounds_come_from_the_field_metadata():
    from rlrun.core.errors import ConfigError
    from rlrun.schemas.bandits import EpsilonGreedyConfig

    with pytest.raises(ConfigError, match=r"epsilon=1.5 must be in \[0, 1\]"):
        EpsilonGreedyConfig(epsilon=1.5)
    with pytest.raises(ConfigError, match="step_size=0 must be > 0"):
        EpsilonGreedyConfig(step_size=0)
    with pytest.raises(ConfigError, match="epsilon=nan"):
        EpsilonGreedyConfig(epsilon=float("nan"))
    assert EpsilonGreedyConfig(step_size=None).step_size is None  # null: sample averages
