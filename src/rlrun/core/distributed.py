"""Data-parallel runs under `torchrun`: the process group, DDP, per-rank seeds, reductions.

    torchrun --standalone --nproc_per_node=2 -m rlrun algo=lm        # docs/scaling.md

torchrun starts one rlrun process per rank and sets RANK, LOCAL_RANK and WORLD_SIZE; without
them (a plain `rlrun`) everything here is a no-op and a run is exactly what it always was.
Under torchrun:

- the process group is initialised before Hydra composes the config (`setup`), with gloo
  for CPU tensors and, where CUDA exists, NCCL for CUDA ones; each rank then uses
  `cuda:LOCAL_RANK`;
- rank 0's clock names the run dir (`shared_time`): every rank composes its own config, and
  Hydra's `${now:...}` could otherwise differ by a second between ranks;
- the loops wrap their network in DDP (`Dist.wrap`), which averages gradients across ranks;
  each rank draws its own batches from `Dist.seed(seed)` (the seed itself on one process);
- `algo.batch_size` is per rank: the global batch is batch_size x WORLD_SIZE;
- only rank 0 writes (run dir, TensorBoard, results.json, checkpoint, lock);
- `Dist.agree` combines the per-rank stop / checkpoint-due flags once per tick, so every
  rank stops, and saves, at the same step.

A SLURM job with several tasks is the same run (`hydra.launcher.tasks_per_node=N`, and
`nodes=M` for several nodes, under `rlrun -m hydra/launcher=slurm`): submitit starts one
process per task, and each reads its rank from SLURM's task variables instead of torchrun's,
and meets the others at the job's first host (`_export_rendezvous`). Everything else above
holds as under torchrun.

torch is imported only when a process group is used.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

ERROR_KEY = "rlrun/error"  # set in the rendezvous store by the first rank that fails


# A submitit job with several tasks (hydra.launcher.tasks_per_node x nodes) is one data-parallel
# run, each task a rank: where submitit's executors keep (global rank, local rank, tasks).
# The last name is the job's number of nodes.
_SUBMITIT_TASKS = {
    "slurm": ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_JOB_NUM_NODES"),
    "local": ("SUBMITIT_LOCAL_GLOBALID", "SUBMITIT_LOCAL_LOCALID", "SUBMITIT_LOCAL_NTASKS",
              "SUBMITIT_LOCAL_JOB_NUM_NODES"),
}


def env_world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment, or else from the tasks of a
    submitit job (SLURM's or submitit_local's); (0, 0, 1) without either."""
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    if "WORLD_SIZE" not in os.environ:
        names = _SUBMITIT_TASKS.get(os.environ.get("SUBMITIT_EXECUTOR", ""), names)
    try:
        world = int(os.environ.get(names[2]) or 1)
        rank = int(os.environ.get(names[0]) or 0)
        local = int(os.environ.get(names[1]) or rank)
    except ValueError:
        return 0, 0, 1
    return (rank, local, world) if world > 1 else (0, 0, 1)


def ranks_per_node() -> int:
    """torchrun's LOCAL_WORLD_SIZE, or a submitit job's tasks per node (1 on one process)."""
    world = env_world()[2]
    if "LOCAL_WORLD_SIZE" in os.environ or not submitit_tasks():
        return int(os.environ.get("LOCAL_WORLD_SIZE") or world)
    nodes = os.environ.get(_SUBMITIT_TASKS[os.environ["SUBMITIT_EXECUTOR"]][3]) or "1"
    return world // max(int(nodes), 1)


def submitit_tasks() -> bool:
    """Whether this process is one task of a submitit job with several (not torchrun)."""
    return "WORLD_SIZE" not in os.environ and is_distributed()


def is_distributed() -> bool:
    return env_world()[2] > 1


def rank() -> int:
    return env_world()[0]


def setup() -> None:
    """Join the process group (once; no-op outside torchrun). Called before Hydra composes
    the config, so the backend is picked before the device is known: gloo for CPU tensors,
    plus NCCL for CUDA tensors where CUDA exists (one process group serves both)."""
    r, local, world = env_world()
    if world == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if submitit_tasks():  # torchrun sets these; for submitit's tasks, rank 0's host and a port
        _export_rendezvous()
    backend = "gloo"
    if torch.cuda.is_available() and gpu_index(local) < torch.cuda.device_count():
        torch.cuda.set_device(gpu_index(local))
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend, rank=r, world_size=world)


def _export_rendezvous() -> None:
    """MASTER_ADDR / MASTER_PORT for the tasks of a submitit job, as submitit's own
    `TorchDistributedEnvironment` picks them (the job's first host, a port drawn from the
    job id, so that a requeued job meets at the same place); values already set are kept."""
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment()
    os.environ.setdefault("MASTER_ADDR", str(env.master_addr))
    os.environ.setdefault("MASTER_PORT", str(env.master_port))


def gpu_index(local_rank: int) -> int:
    """This rank's GPU: `cuda:LOCAL_RANK` among the node's GPUs, or the one GPU the scheduler
    bound to this task (SLURM's --gpus-per-task or --gpu-bind leave each task one device)."""
    import torch

    return 0 if torch.cuda.device_count() == 1 else local_rank


def shared_time() -> float:
    """Rank 0's wall clock, the same on every rank (names the run dir)."""
    now = time.time()
    if not is_distributed():
        return now
    import torch.distributed as dist

    box = [now]
    dist.broadcast_object_list(box, src=0)
    return float(box[0])


def from_rank0(value: Any) -> Any:
    """Rank 0's `value` on every rank (the value itself on one process)."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def teardown(together: bool = True) -> None:
    """Leave the process group (torch warns at exit otherwise); nothing if never joined.

    `together`: wait for every rank first. A rank that tears down while another still
    finishes its run (rank 0's final evaluation and save) aborted in gloo's threads now and
    then. A rank leaving on an error must not wait: its peers may be inside another
    collective, which a barrier would never match (a hang until gloo's 30-minute timeout);
    once it is gone their collective fails at once."""
    import sys

    if is_distributed() and "torch.distributed" in sys.modules:
        import torch.distributed as dist

        if dist.is_initialized():
            if together:
                with contextlib.suppress(Exception):
                    dist.barrier()
            dist.destroy_process_group()
            # the group's C++ object (and gloo's threads) goes now, while the interpreter is
            # whole: left to interpreter finalization, its threads abort the process at times
            import gc

            gc.collect()


def report_error(message: str) -> None:
    """Leave `message` in the rendezvous store for rank 0 (best effort): the ranks that then
    lose their peers report it instead of a connection error."""
    # the store may be gone with the agent: then there is no one left to tell
    with contextlib.suppress(Exception):
        import torch.distributed as dist
        from torch.distributed.distributed_c10d import _get_default_store

        if dist.is_initialized():
            store = _get_default_store()
            store.compare_set(ERROR_KEY, "", message)  # the first failure wins


def peer_error() -> str | None:
    """The failure another rank reported (`report_error`), if any."""
    try:
        import torch.distributed as dist
        from torch.distributed.distributed_c10d import _get_default_store

        if not dist.is_initialized():
            return None
        store = _get_default_store()
        if store.check([ERROR_KEY]):
            value = store.get(ERROR_KEY).decode()
            return value or None
    except Exception:  # noqa: BLE001
        return None
    return None


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Dist:
        r, local, world = env_world()
        if world > 1:
            setup()
        return cls(r, local, world)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's data seed: `seed` itself on one process; on several, distinct per
        rank and per `seed` (no two (seed, rank) pairs share a stream)."""
        if not self.enabled:
            return seed
        import numpy as np

        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint64)[0]
                   % 2**63)

    def device(self, device: str) -> str:
        """`cuda` becomes this rank's GPU, `cuda:LOCAL_RANK` (`gpu_index`)."""
        if self.enabled and device.startswith("cuda"):
            return f"cuda:{gpu_index(self.local_rank)}"
        return device

    def wrap(self, module: Any) -> Any:
        """DDP around `module` (gradients averaged across ranks in backward); the module
        itself on one process. Checkpoints keep tracking the module, not the wrapper. Every
        parameter must take part in each forward (the MoE layers' experts are stacked
        tensors: an expert no token reached still gets a zero gradient)."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        dev = next(module.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        return DDP(module, device_ids=ids)

    def _reduce(self, values: list[float], op: str) -> list[float]:
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
        return t.tolist()

    def mean(self, x: float) -> float:
        """The mean of `x` over ranks (losses, which are per-rank averages)."""
        return self._reduce([float(x)], "sum")[0] / self.world_size if self.enabled \
            else float(x)

    def sum(self, x: float) -> float:
        """The sum of `x` over ranks (FLOPs, tokens, images)."""
        if not self.enabled:
            return x
        total = self._reduce([float(x)], "sum")[0]
        return int(total) if isinstance(x, int) else total

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every rank when it is true on any (stop, checkpoint due)."""
        if not self.enabled:
            return flags
        return tuple(v > 0 for v in self._reduce([float(f) for f in flags], "max"))

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` on rank 0 (None on the others); [obj] on one process."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(_to_cpu(obj), out, dst=0)
        return out


def _to_cpu(x: Any) -> Any:
    """Tensors moved to the CPU (pickled CUDA tensors would land on the sender's GPU)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_to_cpu(v) for v in x)
    return x


def first_error(message: str) -> str:
    """Report `message` as this rank's failure and return the run's first one: a rank whose
    peer crashed fails too (its collective loses the link), and names the peer's error."""
    report_error(message)
    return peer_error() or message
