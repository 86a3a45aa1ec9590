"""Stage 7: token shards, `train_000000.bin`, `val_000000.bin`, ...

Each shard is raw token ids (uint16, or uint32 when the vocabulary has more than 65,536
tokens), documents one after another, each followed by the end-of-text token; no header, so
`np.memmap(file, dtype=meta['dtype'])` reads it. A shard holds `shard_tokens` tokens, the
last of a split the rest. The writer only ever writes into the build folder: the pipeline
moves finished shards into place, so a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlrun.data.tokens import shard_name


class ShardWriter:
    """Append documents' ids to `<folder>/<split>_NNNNNN.bin` files of `shard_tokens` each."""

    def __init__(self, folder: Path, split: str, dtype: str, shard_tokens: int, eot_id: int):
        self.folder, self.split, self.shard_tokens = Path(folder), split, shard_tokens
        self.dtype, self.eot = np.dtype(dtype), eot_id
        self.shards: list[dict] = []  # {"file", "tokens"} per written shard
        self._buf = np.empty(min(shard_tokens, 1 << 22), dtype=self.dtype)
        self._n = 0  # tokens in _buf
        self._in_file = 0  # tokens already in the open shard file
        self.tokens = 0

    def add(self, ids: np.ndarray) -> None:
        """One document: its ids, then the end-of-text token."""
        doc = np.empty(len(ids) + 1, dtype=self.dtype)
        doc[:-1] = ids
        doc[-1] = self.eot
        self.tokens += len(doc)
        while len(doc):
            room = min(self.shard_tokens - self._in_file - self._n, len(self._buf) - self._n)
            take = doc[:room]
            self._buf[self._n:self._n + len(take)] = take
            self._n += len(take)
            doc = doc[len(take):]
            if self._n == len(self._buf) or self._in_file + self._n == self.shard_tokens:
                self._flush()
            if self._in_file == self.shard_tokens:
                self._close_shard()

    def _flush(self) -> None:
        if not self._n:
            return
        with open(self.folder / shard_name(self.split, len(self.shards)), "ab") as f:
            f.write(self._buf[:self._n].tobytes())
        self._in_file += self._n
        self._n = 0

    def _close_shard(self) -> None:
        if self._in_file:
            self.shards.append({"file": shard_name(self.split, len(self.shards)),
                                "tokens": self._in_file})
        self._in_file = 0

    def close(self) -> list[dict]:
        self._flush()
        self._close_shard()
        return self.shards
