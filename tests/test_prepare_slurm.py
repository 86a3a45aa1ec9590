"""`rlrun-prepare executor=slurm` against a real SLURM (`scripts/slurm_local.sh start`, then
`pytest -m slurm`): the per-file stages as one job array give the same corpus, byte for
byte, as `executor=local`, and a failing task is one line naming the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rlrun.prepare import pipeline
from rlrun.prepare.settings import Settings
from tests.test_prepare import extra_docs, planted, run, write_corpus


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NO_CLUSTER = "no SLURM cluster: sinfo fails (start one with: sudo scripts/slurm_local.sh start)"
if os.environ.get("RLRUN_SLURM_REQUIRED") == "1" and not _cluster_up():  # CI: fail, loudly
    raise RuntimeError(NO_CLUSTER)
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(not _cluster_up(), reason=NO_CLUSTER)]


def test_a_slurm_array_prepares_the_same_corpus(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {**planted(), **extra_docs(12)})
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    pipeline.prepare([str(corpus)], Settings(out=str(local), vocab_size=300, progress=False),
                     echo=lambda s: None)
    meta = pipeline.prepare([str(corpus)], Settings(
        out=str(cluster), vocab_size=300, progress=False, executor="slurm", workers=3,
        slurm_mem_gb=1, slurm_time_min=10), echo=lambda s: None)
    for name in ("train_000000.bin", "val_000000.bin", "tokenizer.json", "stages.parquet"):
        assert (cluster / name).read_bytes() == (local / name).read_bytes(), name
    assert meta["documents"] == json.loads((local / "meta.json").read_text())["documents"]
    assert not list(cluster.glob(".prepare-*"))  # the build folder, job logs included, is gone


def test_the_documented_slurm_command(tmp_path, capsys, monkeypatch):
    import shlex

    from tests.test_prepare import doc_blocks

    (command,) = [line for block in doc_blocks("bash") for line in block.splitlines()
                  if line.startswith("rlrun-prepare ")]
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "notes", extra_docs(20))
    code, _, err = run(shlex.split(command)[1:], capsys)
    assert code == 0, err
    assert json.loads(Path("data/notes-slurm/meta.json").read_text())["documents"]["kept"] == 20


def test_a_failing_task_is_one_line_naming_the_file(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", extra_docs(6))
    bad = corpus / "zz_latin1.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    code, _, err = run([str(corpus), f"out={tmp_path / 'out'}", "executor=slurm", "workers=2",
                        "slurm_mem_gb=1", "slurm_time_min=10"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{bad} is not UTF-8 (invalid continuation byte at byte 3)" in err
    assert not (Path(tmp_path / "out") / "meta.json").exists()
