"""Replay and rollout storage for the deep RL loops, kept as tensors on the run's device.

Keeping the replay buffer on the device means a sampled batch never crosses the host/device
boundary inside the update, and sampling is one `randint` plus one gather per field. With a
`seed` (the loops pass their run's `buffer` stream) a buffer samples from a torch generator
of its own, saved in its `state_dict`: which transitions are replayed does not depend on the
other draws of the run (network initialisation, policy noise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ReplayBuffer:
    """A ring buffer of transitions (obs, action, reward, next_obs, terminated).

    `terminated` is the true end of an episode; truncated episodes store their real last
    observation as `next_obs` and are bootstrapped like any other step.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 device: str | torch.device, obs_dtype: torch.dtype = torch.float32,
                 act_dtype: torch.dtype = torch.float32, seed: int | None = None):
        self.capacity, self.device = int(capacity), torch.device(device)
        self.pos, self.full = 0, False
        self.gen = _generator(self.device, seed)
        kw = {"device": self.device}
        self.data = {
            "obs": torch.zeros((self.capacity, *obs_shape), dtype=obs_dtype, **kw),
            "next_obs": torch.zeros((self.capacity, *obs_shape), dtype=obs_dtype, **kw),
            "actions": torch.zeros((self.capacity, *act_shape), dtype=act_dtype, **kw),
            "rewards": torch.zeros(self.capacity, dtype=torch.float32, **kw),
            "terminated": torch.zeros(self.capacity, dtype=torch.float32, **kw),
        }

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Add one step of a vector env (a batch of `num_envs` transitions)."""
        n = len(obs)
        fields = (("obs", obs), ("actions", actions), ("rewards", rewards),
                  ("next_obs", next_obs), ("terminated", terminated))
        if self.pos + n <= self.capacity:  # no wrap (always, for one env): a slice, no index
            where: Any = slice(self.pos, self.pos + n)  # tensor to build and move
        else:
            where = ((torch.arange(n) + self.pos) % self.capacity).to(self.device)
        if self.device.type == "cpu" and isinstance(where, slice):
            # on the CPU the tensors' memory is written through NumPy views: the same cast
            # (NumPy's and torch's float64 -> float32 both round to nearest) at ~1 us a
            # field instead of ~8 us for a tensor built, converted and copied in
            for key, value in fields:
                t = self.data[key].numpy()
                t[where] = np.asarray(value).reshape(n, *t.shape[1:])
        else:
            for key, value in fields:
                t = self.data[key]
                t[where] = torch.as_tensor(np.asarray(value), dtype=t.dtype).to(
                    self.device, non_blocking=True).reshape(n, *t.shape[1:])
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(self), (batch_size,), device=self.device, generator=self.gen)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        n = len(self)
        return {"pos": self.pos, "full": self.full, **_generator_state(self.gen),
                **{k: v[:n].cpu() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; into a larger buffer too (a resume that raised `algo.total_steps`, which
        sizes the buffer): a full saved ring is then laid out oldest first, as a run that
        had this capacity from the start would hold it."""
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        _load_generator(self.gen, state)
        n = len(state["rewards"])
        if n > self.capacity:
            raise ValueError(f"the saved replay holds {n} transitions, more than this"
                             f" buffer's {self.capacity}")
        grown = self.full and n < self.capacity
        for k, v in self.data.items():
            saved = state[k].to(self.device)
            v[:n] = torch.roll(saved, -self.pos, 0) if grown else saved
        if grown:
            self.pos, self.full = n, False


class FrameReplayBuffer:
    """Replay for stacked-frame observations that stores every frame once, as uint8.

    A stacked observation of S frames shares S-1 of them with its neighbours, and
    `next_obs` is the next step's `obs`: storing (obs, next_obs) stacks would keep each frame
    2S times. Here each env copy writes one stream of slots, one frame per slot:

        f0 f1 ... fT(final) | f0' f1' ...       first=1 at f0, f0'; valid=1 at f0 .. f(T-1)

    Slot i holds the newest frame of obs_t and the action, reward and terminal flag of
    step t; the transition's next observation is the stack ending at slot i+1. An episode's
    last observation (needed to bootstrap a time limit) gets a slot of its own, which starts
    no transition. Stacks are rebuilt on sampling by walking back from the slot and repeating
    an episode's first frame where the episode is younger than the stack (what Gymnasium's
    FrameStackObservation does with its default "reset" padding). ~H*W + 12 bytes per
    transition: 7.07 GB for a million 84x84 transitions.
    """

    def __init__(self, capacity: int, n_envs: int, stack: int, frame_shape: tuple[int, ...],
                 device: str | torch.device, seed: int | None = None):
        self.device, self.n, self.stack = torch.device(device), int(n_envs), int(stack)
        self.gen = _generator(self.device, seed)
        # per stream: its share of `capacity` plus room for the stack walk and final slots
        self.length = -(-int(capacity) // self.n) + self.stack + 1
        shape, kw = (self.n, self.length), {"device": self.device}
        self.frames = torch.empty((*shape, *frame_shape), dtype=torch.uint8, **kw)  # lazy pages
        self.data = {"actions": torch.zeros(shape, dtype=torch.int32, **kw),
                     "rewards": torch.zeros(shape, dtype=torch.float32, **kw),
                     "terminated": torch.zeros(shape, dtype=torch.bool, **kw),
                     "first": torch.zeros(shape, dtype=torch.bool, **kw),
                     "valid": torch.zeros(shape, dtype=torch.bool, **kw)}
        self.pos = torch.zeros(self.n, dtype=torch.long)  # the slot of each current obs
        self.size = torch.zeros(self.n, dtype=torch.long)  # slots written, up to `length`
        self._rows = torch.arange(self.n)

    def nbytes(self) -> int:
        return self.frames.nbytes + sum(v.nbytes for v in self.data.values())

    def __len__(self) -> int:
        return int(self.data["valid"].sum())

    def _write(self, rows: torch.Tensor, slots: torch.Tensor, frames: np.ndarray,
               first: bool) -> None:
        d = self.device
        self.frames[rows.to(d), slots.to(d)] = torch.as_tensor(np.asarray(frames)).to(d)
        self.data["first"][rows.to(d), slots.to(d)] = first
        self.data["valid"][rows.to(d), slots.to(d)] = False  # its old transition is gone
        self.size[rows] = torch.clamp(torch.maximum(self.size[rows], slots + 1),
                                      max=self.length)

    def start(self, frames: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Begin episodes with their first frames (at reset, or after a resume)."""
        r = self._rows if rows is None else torch.as_tensor(rows, dtype=torch.long)
        slots = (self.pos[r] + 1) % self.length if self.size.sum() > 0 else self.pos[r]
        self._write(r, slots, frames, True)
        self.pos[r] = slots

    def add(self, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
            next_frames: np.ndarray, done: np.ndarray, reset_frames: np.ndarray) -> None:
        """One vector-env step: `next_frames` are the newest frames of the real next
        observations (the final ones where `done`), `reset_frames` those of the
        observations the env returned (the new episodes' first ones where `done`)."""
        d, r, p = self.device, self._rows, self.pos
        for key, v in (("actions", actions), ("rewards", rewards), ("terminated", terminated)):
            t = self.data[key]
            t[r.to(d), p.to(d)] = torch.as_tensor(np.asarray(v)).to(d, t.dtype)
        q = (p + 1) % self.length
        self._write(r, q, next_frames, False)
        self.data["valid"][r.to(d), p.to(d)] = True
        self.pos = q
        done_rows = np.flatnonzero(np.asarray(done))
        if done_rows.size:
            self.start(np.asarray(reset_frames)[done_rows], done_rows)

    def _stacks(self, rows: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """(B, S, H, W) frames: slot and its S-1 predecessors, the episode's first repeated."""
        first = self.data["first"]
        idx = [slots]
        for _ in range(self.stack - 1):
            prev = idx[-1]
            idx.append(torch.where(first[rows, prev], prev, (prev - 1) % self.length))
        return self.frames[rows[:, None], torch.stack(idx[::-1], 1)]

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        d, n = self.device, batch_size
        if len(self) == 0:
            raise ValueError("sample() before any transition was added")
        rows = torch.empty(n, dtype=torch.long, device=d)
        slots = torch.empty(n, dtype=torch.long, device=d)
        todo = torch.ones(n, dtype=torch.bool, device=d)
        size, pos = self.size.to(d), self.pos.to(d)
        while True:  # rejection: few slots start no transition (episode ends, the head)
            k = int(todo.sum())
            if k == 0:
                break
            r = torch.randint(0, self.n, (k,), device=d, generator=self.gen)
            s = (torch.rand(k, device=d, generator=self.gen) * size[r]).long()
            # the S-1 slots after the head have stack histories that were overwritten
            ok = self.data["valid"][r, s] & ((s - pos[r] - 1) % self.length >= self.stack - 1)
            where = todo.nonzero().squeeze(1)
            rows[where[ok]], slots[where[ok]] = r[ok], s[ok]
            todo[where[ok]] = False
        nxt = (slots + 1) % self.length
        return {"obs": self._stacks(rows, slots), "next_obs": self._stacks(rows, nxt),
                "actions": self.data["actions"][rows, slots].long(),
                "rewards": self.data["rewards"][rows, slots],
                "terminated": self.data["terminated"][rows, slots].float()}

    def state_dict(self) -> dict[str, Any]:
        m = int(self.size.max())
        return {"pos": self.pos.clone(), "size": self.size.clone(),
                "frames": self.frames[:, :m].cpu(), **_generator_state(self.gen),
                **{k: v[:, :m].cpu() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.size = state["pos"].clone().long(), state["size"].clone().long()
        _load_generator(self.gen, state)
        m = int(self.size.max())
        self.frames[:, :m] = state["frames"].to(self.device)
        for k, v in self.data.items():
            v[:, :m] = state[k].to(self.device)


def _generator(device: torch.device, seed: int | None) -> torch.Generator | None:
    """A buffer's own sampling generator (None: torch's global one)."""
    return None if seed is None else torch.Generator(device=device).manual_seed(int(seed))


def _generator_state(gen: torch.Generator | None) -> dict[str, Any]:
    return {} if gen is None else {"generator": gen.get_state()}


def _load_generator(gen: torch.Generator | None, state: dict[str, Any]) -> None:
    if gen is not None and "generator" in state:
        gen.set_state(state["generator"])
