"""`stages.parquet`: one row per input document, with its fate and its filter scores.

Columns: `doc` (0-based, input order), `source` (file), `idx` (0 for a whole file, else the
line or record number), `bytes` (UTF-8 bytes as read), `chars` (after normalisation),
`hash` (hex BLAKE2b-128 of the normalised text), `fate` (`kept`, `empty`, `exact_dup`,
`near_dup`, or the name of the failed filter setting, e.g. `min_words`), `dup_of` (the
kept document an exact or near duplicate repeats), `jaccard` (the highest exact Jaccard
with an earlier kept MinHash candidate), `split` and `tokens` (kept documents, the
end-of-text token included), then every filter score (`rlrun.prepare.filters.SCORES`).

DuckDB writes it, as `rlrun.core.scalars` writes `scalars.parquet`: already a dependency,
and what a user queries it with (`duckdb -c "SELECT fate, count(*) FROM 'DIR/stages.parquet'
GROUP BY fate"`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlrun.prepare.filters import SCORES


def write_stages(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write `columns` (equal-length arrays; -1 in `dup_of`/`tokens` and '' in `split`
    mean NULL, as NaN does in the float columns) to the Parquet file `path`."""
    import duckdb

    cols = columns  # noqa: F841  (read by DuckDB by name)
    nullable = {"dup_of": "NULLIF(dup_of, -1)", "tokens": "NULLIF(tokens, -1)",
                "split": "NULLIF(split, '')"}
    order = ["doc", "source", "idx", "bytes", "chars", "hash", "fate", "dup_of", "jaccard",
             "split", "tokens", *SCORES]
    select = ", ".join(f"{nullable[c]} AS {c}" if c in nullable else c for c in order)
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        con.register("cols", cols)
        quoted = str(path).replace("'", "''")
        con.execute(f"COPY (SELECT {select} FROM cols ORDER BY doc) TO '{quoted}'"
                    " (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.close()
