"""The loop contract's newer parts (issue 23): named random streams, cadences that survive a
resume, the live observation handed back by resume(), and per-rank state in a data-parallel
run, tested on the run context itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rlrun.core.distributed import Dist
from rlrun.core.logger import LoggerConfig
from rlrun.core.run import RunContext


def _ctx(run_dir, dist=None, resuming=False, seed=3) -> RunContext:
    return RunContext(run_dir=run_dir, algo=None, env=None, algo_name="a", env_name="e",
                      seed=seed, device="cpu", deterministic=False,
                      logger_cfg=LoggerConfig(tensorboard=False, progress="none"),
                      headline="h", resuming=resuming, dist=dist or Dist())


def test_named_streams_are_independent_reproducible_and_rank_aware(tmp_path):
    a, b = _ctx(tmp_path / "a"), _ctx(tmp_path / "b")
    assert a.rng("actions").random() == b.rng("actions").random()  # same seed, same stream
    assert a.rng("actions").random() != a.rng("buffer").random()  # names differ
    assert a.seed_of("envs") == b.seed_of("envs") != a.seed_of("eval")
    other_rank = _ctx(tmp_path / "c", Dist(rank=1, local_rank=1, world_size=2))
    assert other_rank.rng("actions").random() != a.rng("actions").random()
    # the documented derivation: SeedSequence's spawn key, as SeedSequence.spawn keys children
    import zlib

    expected = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(
        zlib.crc32(b"actions"), 0))).random()
    assert a.rng("actions").random() == expected


def test_every_fires_on_its_cadence_and_resumes_it(tmp_path):
    ctx = _ctx(tmp_path / "r")
    fired = [s for s in range(0, 1001, 64) if ctx.every("eval", 250, s)]
    assert fired == [256, 512, 768]  # the first step (of 0, 64, ..., 960) at or past each
    assert not any(ctx.every("never", 0, s) for s in range(0, 500, 50))
    ctx.every("log", 100, 150)  # next point: 200
    ctx.save(150, {})
    ctx.close()
    back = _ctx(tmp_path / "r", resuming=True)
    back.restore()
    assert not back.every("log", 100, 199) and back.every("log", 100, 200)


class _Counter:
    """A stateful item that differs per rank (a replay buffer, an env adapter)."""

    def __init__(self, value):
        self.value = value

    def state_dict(self):
        return {"value": np.array([self.value])}

    def load_state_dict(self, s):
        self.value = int(s["value"][0])


@dataclasses.dataclass(frozen=True)
class _TwoRanks(Dist):
    """Rank 0 of two, whose peer's state is given: gather() returns both ranks' items."""

    peer: dict = dataclasses.field(default_factory=dict)

    def agree(self, *flags):
        return flags

    def gather(self, obj):
        return [obj, self.peer]


def test_per_rank_state_resumes_each_rank_with_its_own(tmp_path):
    run = tmp_path / "ddp"
    peer = {"rng": None, "loop": {"buffer": {"value": np.array([11])}}}
    ctx = _ctx(run, _TwoRanks(rank=0, local_rank=0, world_size=2, peer=peer))
    shared, mine = _Counter(5), _Counter(10)
    ctx.track(net=shared)
    ctx.track_per_rank(buffer=mine)
    from rlrun.core.seeding import rng_state

    peer["rng"] = rng_state()
    ctx.save(7, ctx.state_dict())
    ctx.close()
    for rank, expected in ((0, 10), (1, 11)):
        back = _ctx(run, Dist(rank=rank, local_rank=rank, world_size=2), resuming=True)
        net, buffer = _Counter(0), _Counter(0)
        back.track(net=net)
        back.track_per_rank(buffer=buffer)
        assert back.resume() and back.step == 7
        assert (net.value, buffer.value) == (5, expected), rank  # shared once, buffer per rank


def test_resume_hands_back_the_live_observation(tmp_path):
    class Envs(_Counter):
        last_obs = np.zeros(3)

        def load_state_dict(self, s):
            super().load_state_dict(s)
            self.last_obs = np.full(3, float(self.value))

    ctx = _ctx(tmp_path / "o")
    ctx.track(envs=Envs(4))
    fresh = ctx.resume()
    assert not fresh and fresh.obs is not None and not fresh.obs.any()
    ctx.save(3, ctx.state_dict())
    ctx.close()
    back = _ctx(tmp_path / "o", resuming=True)
    envs = Envs(0)
    back.track(envs=envs)
    resumed = back.resume()
    assert resumed and resumed.step == 3 and resumed.obs.tolist() == [4.0, 4.0, 4.0]


def test_stop_at_stops_as_ctrl_c_would(tmp_path):
    from rlrun import testing

    stopped = testing.interrupt(tmp_path, ["env.num_runs=20", "env.steps=400"], stop=150)
    from .conftest import read_results

    rec = read_results(stopped)
    assert rec["status"] == "interrupted" and 150 <= rec["steps"] < 400
    resumed = testing.resume(stopped)
    whole = testing.run(tmp_path, ["env.num_runs=20", "env.steps=400"], "whole")
    assert resumed["metrics"] == whole["metrics"]
    testing.assert_same_state(stopped, tmp_path / "whole")
    with pytest.raises(AssertionError, match="ended before step"):
        testing.interrupt(tmp_path, ["env.num_runs=20", "env.steps=100"], stop=150, name="c")


def test_a_signal_that_lands_while_the_ranks_agree_stops_at_the_next_tick(tmp_path):
    """Ranks wait for each other inside `agree`, so a Ctrl-C often lands there. The tick acts
    on the agreed answer (the peer did not see the signal) and keeps the signal for the next
    tick; overwriting it lost the stop, and torchrun killed the ranks 30 s later."""

    @dataclasses.dataclass(frozen=True)
    class SignalDuringAgree(Dist):
        ctx: list = dataclasses.field(default_factory=list)
        calls: list = dataclasses.field(default_factory=list)

        def agree(self, *flags):
            self.calls.append(flags[0])
            if len(self.calls) == 2:
                self.ctx[0].stop_requested = True  # the handler, between two bytecodes
            return flags

        def gather(self, obj):  # the checkpoint's per-rank items: the peer's like ours
            return [obj, obj]

    dist = SignalDuringAgree(rank=0, local_rank=0, world_size=2)
    ctx = _ctx(tmp_path / "r", dist)
    dist.ctx.append(ctx)
    ctx.start_progress(10)
    assert [ctx.tick(s, None, dict) for s in (1, 2, 3)] == [False, False, True]
    assert dist.calls == [False, False, True]  # the peers agree on stopping at step 3
    assert ctx.has_checkpoint and ctx.stop_requested
