"""Every config composes, and every algo/env config validates against its schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlrun.core.config import config_dir, import_object, validate
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


@pytest.mark.parametrize("algo", options("algo"))
def test_algo_configs_validate(algo):
    node = compose_cfg([f"algo={algo}"]).algo
    assert node.name == algo
    import_object(node.loop, "loop")
    validate(node, import_object(node.schema, "schema"), "algo")


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
    validate(OmegaConf.load(CONFIGS / "logger" / "tensorboard.yaml"), LoggerConfig, "logger")


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


def test_yaml_defaults_agree_with_the_schema_dataclasses():
    """A default is written twice (the algorithm's YAML, for the CLI and --cfg; its dataclass,
    for code and tests). Where one YAML stands for a schema, the two must agree key by key,
    and the YAML must list every field (else Hydra refuses to override it without '+').
    Variants that share a schema (ddpg on TD3's, sarsa on TD control's) differ on purpose."""
    import dataclasses
    import importlib

    import yaml

    from rlrun.core.config import config_dir

    files = sorted((config_dir() / "algo").glob("*.yaml"))
    nodes = {p.stem: yaml.safe_load(p.read_text()) for p in files}
    by_schema: dict[str, list[str]] = {}
    for name, node in nodes.items():
        by_schema.setdefault(node["schema"], []).append(name)

    def disagreements(name: str) -> list[str]:
        node = nodes[name]
        module, _, cls_name = node["schema"].rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        out = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default
            if f.name not in node:
                out.append(f"configs/algo/{name}.yaml lacks {f.name}")
            elif node[f.name] != default:
                out.append(f"configs/algo/{name}.yaml: {f.name}={node[f.name]!r},"
                           f" dataclass {default!r}")
        return out

    for schema, names in by_schema.items():
        # one YAML per schema (the base; variants such as ddpg or sarsa differ on purpose)
        # must agree with the dataclass on every field
        problems = {n: disagreements(n) for n in names}
        assert any(not p for p in problems.values()), (schema, problems)
    assert len(by_schema) >= 10
