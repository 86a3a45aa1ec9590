"""`executor=slurm`: the per-file stages as one SLURM job array, through submitit.

rlrun-prepare keeps rensa, not datatrove, so datatrove's SLURM executor is not available;
submitit (already what `hydra/launcher=slurm` uses, in the `sweep` extra) submits the same
per-file work instead. The input files are cut into `workers` contiguous chunks, one array
task each (`slurm_array_parallelism` = `workers`). A task runs `pipeline.process_file` over
its chunk and writes the results as one `.npz` of plain arrays into the build folder inside
`out` (which must therefore be on a filesystem the nodes share); this process waits, reads
them back with `allow_pickle=False`, and runs the corpus-wide stages itself, as with
`executor=local`. The result is the same, byte for byte.

A task that fails (a file that is not UTF-8, say) is one line naming the file, as it is
locally; a task that dies otherwise (killed, out of memory) is one line quoting the last line
of its log. Ctrl-C cancels the array.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError, DataError
from rlrun.prepare import filters
from rlrun.prepare.inputs import Source
from rlrun.prepare.settings import Settings

_ERROR_LINE = re.compile(r"^rlrun\.core\.errors\.(\w+Error): (.+)$", re.M)


def _task(path: str, sources: list[Source], s: Settings) -> int:
    """One array task: the per-file stages of `sources`, saved to `path` as arrays."""
    from rlrun.prepare.pipeline import process_file

    results = [process_file(src, s) for src in sources]
    texts = [t.encode("utf-8") for r in results for t in r.texts]
    n = len(texts)
    arrays = {
        "file_docs": np.array([len(r.texts) for r in results], dtype=np.int64),
        "indices": np.array([i for r in results for i in r.indices], dtype=np.int64),
        "raw_bytes": np.array([b for r in results for b in r.raw_bytes], dtype=np.int64),
        "text_lengths": np.array([len(t) for t in texts], dtype=np.int64),
        "text": np.frombuffer(b"".join(texts), dtype=np.uint8),
        "hashes": np.frombuffer(b"".join(h for r in results for h in r.hashes),
                                dtype=np.uint8).reshape(n, 16),
        "has_words": np.array([w for r in results for w in r.has_words], dtype=bool),
        "scores": np.array([[r.scores[k][i] for k in filters.SCORES]
                            for r in results for i in range(len(r.texts))],
                           dtype=np.float64).reshape(n, len(filters.SCORES)),
    }
    if s.near_dedup:
        arrays["sigs"] = np.concatenate([r.sigs for r in results]).reshape(n, s.num_perm)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    Path(tmp).replace(path)
    return n


def _load(path: Path, sources: list[Source], s: Settings) -> list[Any]:
    from rlrun.prepare.pipeline import FileResult

    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    ends = np.cumsum(a["text_lengths"])
    blob = a["text"].tobytes()
    texts = [blob[e - n:e].decode("utf-8") for e, n in zip(ends, a["text_lengths"], strict=True)]
    out, start = [], 0
    for src, k in zip(sources, a["file_docs"], strict=True):
        sl = slice(start, start + int(k))
        out.append(FileResult(
            src.path, indices=a["indices"][sl].tolist(), raw_bytes=a["raw_bytes"][sl].tolist(),
            texts=texts[sl], hashes=[bytes(h) for h in a["hashes"][sl]],
            sigs=a["sigs"][sl] if s.near_dedup else None,
            has_words=a["has_words"][sl].tolist(),
            scores={name: a["scores"][sl, j].tolist() for j, name in enumerate(filters.SCORES)}))
        start += int(k)
    return out


def check_available() -> None:
    """submitit is installed and sbatch is on the PATH, or a one-line ConfigError."""
    import importlib.util

    if importlib.util.find_spec("submitit") is None:
        raise ConfigError("executor=slurm needs submitit: pip install 'rlrun[sweep]'")
    if shutil.which("sbatch") is None:
        raise ConfigError("executor=slurm needs a SLURM cluster, and sbatch is not found here;"
                          " on one machine use executor=local workers=N")


def _executor(folder: Path, s: Settings) -> Any:
    check_available()
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {"timeout_min": s.slurm_time_min, "cpus_per_task": 1,
                              "mem_gb": s.slurm_mem_gb, "slurm_array_parallelism": s.workers,
                              "name": "rlrun-prepare"}
    if s.slurm_partition:
        params["slurm_partition"] = s.slurm_partition
    ex.update_parameters(**params)
    return ex


def map_files(sources: list[Source], s: Settings, build: Path, bar: Any) -> list[Any]:
    """`pipeline.process_file` over every source as a SLURM array; results in input order."""
    folder = build / "slurm"
    ex = _executor(folder, s)
    n = min(s.workers, len(sources))
    cuts = np.linspace(0, len(sources), n + 1).round().astype(int)
    chunks = [sources[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    paths = [str(folder / f"chunk_{k:05d}.npz") for k in range(n)]
    jobs = ex.map_array(_task, paths, chunks, [s] * n)
    try:
        pending = set(range(n))
        while pending:
            for k in sorted(pending):
                if jobs[k].done():
                    pending.discard(k)
                    _check(jobs[k])
                    bar.update(len(chunks[k]))
            if pending:
                time.sleep(0.5)
    except BaseException:
        for job in jobs:
            if not job.done():
                job.cancel(check=False)
        raise
    return [r for k in range(n) for r in _load(Path(paths[k]), chunks[k], s)]


def _check(job: Any) -> None:
    """A failed task as one line: its own RlrunError's message, else where its log is."""
    error = job.exception()
    if error is None:
        return
    found = _ERROR_LINE.findall(str(error))
    if found:
        kind, message = found[-1]
        raise (ConfigError if kind == "ConfigError" else DataError)(message)
    last = [line for line in str(error).splitlines() if line.strip()][-1:] or ["no output"]
    # the build folder, logs included, goes when this error ends the command: quote the log
    raise DataError(f"SLURM job {job.job_id} failed; the last line of its log:"
                    f" {last[0].strip()[:300]}")
