"""`rlrun-prepare [INPUT...] [key=value ...] [--force]`: the console script (docs/prepare.md).

Arguments are read as `rlrun-eval` reads its own: a `key=value` whose key is an option sets
it, `--force` replaces a corpus prepared with other settings or inputs, anything else is an
INPUT. Bad input is one line on stderr and exit code 2; Ctrl-C is exit 130 with `out` as it
was.
"""

from __future__ import annotations

import os
import sys

from rlrun.core.errors import ConfigError, RlrunError
from rlrun.prepare.settings import OPTIONS, PROG, Settings, options_help, parse_options

HELP = f"""usage: {PROG} [INPUT ...] [key=value ...] [--force]

Prepare a text corpus for algo=lm: normalise, drop exact and near duplicates, apply quality
filters, split train/validation, train a tokenizer and write token shards. Each INPUT is a
file, a folder or a glob: text files (one document each, or one per line with lines=true),
or JSONL, CSV and Parquet files with a text_key field. With no INPUT: the standard library's
source and documentation shipped with this Python (offline).

Writes into out=DIR: train_*.bin and val_*.bin (token ids), tokenizer.json, meta.json and
stages.parquet (every document's fate and filter scores). A rerun with the same inputs and
settings is up to date and does nothing; other settings or inputs need --force.

options (key=value) [default]:
{options_help()}

examples:
  {PROG} out=data/stdlib
  {PROG} notes/ out=data/notes tokenizer=char
  {PROG} 'posts/*.jsonl' out=data/posts text_key=body vocab_size=4096 workers=2

docs/prepare.md has the stages in detail, the outputs and DuckDB queries over stages.parquet."""


def parse_args(argv: list[str]) -> tuple[list[str], Settings, bool]:
    """(inputs, settings, force) from the command line; bad ones are a one-line ConfigError."""
    inputs, pairs, force = [], [], False
    for arg in argv:
        key, eq, _ = arg.partition("=")
        if arg == "--force":
            force = True
        elif arg.startswith("-"):
            raise ConfigError(f"unknown flag {arg}: {PROG} [INPUT ...] [key=value ...] [--force]"
                              " (see --help)")
        elif eq and (key in OPTIONS or key.isidentifier()) and not os.path.exists(arg):
            pairs.append(arg)
        else:
            inputs.append(arg)
    return inputs, parse_options(pairs), force


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rlrun-prepare` console script."""
    from rlrun.core.errors import describe_os_error

    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return
    out = "out"
    try:
        inputs, settings, force = parse_args(argv)
        out = settings.out
        from rlrun.prepare.pipeline import prepare

        meta = prepare(inputs, settings, force)
        if not meta.get("up_to_date"):
            print(f"wrote {out}: meta.json, stages.parquet, tokenizer.json and"
                  f" {sum(len(v['shards']) for v in meta['splits'].values())} shard(s)")
    except RlrunError as e:
        _fail(str(e))
    except OSError as e:
        _fail(describe_os_error(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {out} is as it was", file=sys.stderr)
        sys.exit(130)


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
