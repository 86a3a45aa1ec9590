"""Stage 0: find the input files and read their documents.

An INPUT is a file, a folder (walked for the `suffixes=` setting, hidden entries skipped) or
a glob (`**` recurses). A `.jsonl`, `.csv` or `.parquet` file holds one document per record,
in the `text_key=` field; any other file is UTF-8 text: one document, or one per non-blank
line with `lines=true`. With no INPUT, the offline default corpus: the standard library's
own source (`sysconfig`'s stdlib folder, without its test suites) and documentation (the
`pydoc_data.topics` that `help()` shows), both shipped with every Python.

Every reading error is a one-line `DataError` naming the file (and the byte offset of bad
UTF-8, the line of bad JSON, the keys a record has when `text_key` is not among them).
Parquet files are read by DuckDB (already a dependency), as data only.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rlrun.core.errors import DataError

TOPICS = "pydoc_data.topics"  # the source name of the default corpus's documentation
DATA_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
# stdlib folders that are not the library itself (test suites, installed packages)
_SKIP_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "pydoc_data",
               "__pycache__"}


@dataclass(frozen=True)
class Source:
    """One input: a file (`kind` by suffix) or the default corpus's documentation topics."""

    path: str
    kind: str  # text | jsonl | csv | parquet | topics

    def fingerprint(self) -> list:
        """(path, size, mtime_ns): what a quick up-to-date check compares."""
        if self.kind == "topics":
            import sys

            return [self.path, sys.version, 0]
        st = os.stat(self.path)
        return [self.path, st.st_size, st.st_mtime_ns]

    def content_hash(self) -> str:
        h = hashlib.sha256()
        if self.kind == "topics":
            for key, text in topics_documents():
                h.update(f"{key}\0{text}\0".encode())
        else:
            try:
                with open(self.path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
            except OSError as e:
                raise DataError(f"cannot read {self.path}: {e.strerror or type(e).__name__}"
                                ) from None
        return h.hexdigest()


def _kind(path: str) -> str:
    return DATA_SUFFIXES.get(Path(path).suffix.lower(), "text")


def default_sources() -> list[Source]:
    """The stdlib's `.py` files (sorted, test suites left out) and its documentation."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not _SKIP_PARTS.intersection(p.relative_to(root).parts[:-1]))
    if not files:
        raise DataError(f"no input found: no standard-library source under {root}; name your"
                        " own files: rlrun-prepare FILE_OR_FOLDER... out=DIR")
    return [*(Source(str(p), "text") for p in files), Source(TOPICS, "topics")]


def topics_documents() -> list[tuple[str, str]]:
    """(topic, text) of Python's documentation topics, in key order."""
    from pydoc_data.topics import topics

    return [(k, topics[k]) for k in sorted(topics)]


def find_sources(inputs: list[str], suffixes: str) -> list[Source]:
    """The files named by `inputs` (files, folders, globs), in order, each once."""
    if not inputs:
        return default_sources()
    wanted = {s.strip().lower() if s.strip().startswith(".") else "." + s.strip().lower()
              for s in suffixes.split(",") if s.strip()}
    found: list[str] = []
    for arg in inputs:
        if glob.has_magic(arg):
            hits = sorted(p for p in glob.glob(os.path.expanduser(arg), recursive=True)
                          if os.path.isfile(p))
            if not hits:
                raise DataError(f"no input found: {arg} matches no file")
            found += hits
            continue
        path = Path(arg).expanduser()
        if path.is_file():
            found.append(str(path))
        elif path.is_dir():
            hits = sorted(str(p) for p in _walk(path) if p.suffix.lower() in wanted)
            if not hits:
                raise DataError(f"no input found in {arg}: no file ending in"
                                f" {', '.join(sorted(wanted))} (set suffixes=...)")
            found += hits
        else:
            raise DataError(f"no input found: {arg} (no such file or folder)")
    seen: set[str] = set()
    sources = []
    for p in found:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            sources.append(Source(os.path.abspath(p), _kind(p)))
    return sources


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                yield Path(dirpath) / name


def read_documents(source: Source, lines: bool, text_key: str) -> list[tuple[int, str]]:
    """(index, text) of every document in `source`: the index is 0 for a whole file, else
    the 1-based line (text, JSONL) or record (CSV, Parquet) number."""
    if source.kind == "topics":
        return list(enumerate(text for _, text in topics_documents()))
    if source.kind == "parquet":
        return _read_parquet(source.path, text_key)
    text = _read_utf8(source.path)
    if source.kind == "jsonl":
        return _read_jsonl(source.path, text, text_key)
    if source.kind == "csv":
        return _read_csv(source.path, text, text_key)
    if lines:
        return [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    return [(0, text)]


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None


def _read_utf8(path: str) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); convert it"
                        " first, e.g. iconv -t utf-8") from None


def _read_jsonl(path: str, text: str, key: str) -> list[tuple[int, str]]:
    docs = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path} line {n} is not JSON ({e})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {n} is a JSON {type(record).__name__}, not an object"
                            f" with a {key!r} key")
        if key not in record:
            raise DataError(f"{path} line {n} has no {key!r} key (keys seen:"
                            f" {', '.join(sorted(record)) or 'none'}); set text_key=...")
        docs.append((n, _as_text(record[key], path, f"line {n}", key)))
    return docs


def _read_csv(path: str, text: str, key: str) -> list[tuple[int, str]]:
    csv.field_size_limit(1 << 30)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = reader.fieldnames or []
        if key not in columns:
            raise DataError(f"{path} has no {key!r} column (keys seen:"
                            f" {', '.join(columns) or 'none'}); set text_key=...")
        return [(n, _as_text(row[key], path, f"record {n}", key))
                for n, row in enumerate(reader, 1)]
    except csv.Error as e:
        raise DataError(f"{path} is not valid CSV ({e})") from None


def _read_parquet(path: str, key: str) -> list[tuple[int, str]]:
    import duckdb

    _check_readable(path)  # an unreadable file says so in the same words as the others
    con = duckdb.connect()
    try:
        try:
            columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)",
                                                 [path]).fetchall()]
        except duckdb.Error as e:
            raise DataError(f"{path} is not a Parquet file ({str(e).splitlines()[0]})") from None
        if key not in columns:
            raise DataError(f"{path} has no {key!r} column (keys seen: {', '.join(columns)});"
                            " set text_key=...")
        quoted = '"' + key.replace('"', '""') + '"'
        rows = con.execute(f"SELECT {quoted} FROM read_parquet(?)", [path]).fetchall()
    finally:
        con.close()
    return [(n, _as_text(v, path, f"record {n}", key)) for n, (v,) in enumerate(rows, 1)
            if v is not None]


def _as_text(value: object, path: str, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{path} {where}: {key!r} holds a {type(value).__name__}, not text")
    return value
