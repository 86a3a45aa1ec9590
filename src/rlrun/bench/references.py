"""The reference numbers (references.yaml beside this module), read with PyYAML's safe
loader: plain data, nothing in the file can run code. Checked on load, so a broken edit of
the file is one line naming the entry, not a KeyError mid-suite."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlrun.core.errors import ConfigError

PATH = Path(__file__).with_name("references.yaml")


@dataclass(frozen=True)
class Reference:
    """A deep RL pair's reference: its return, where it is printed, what it averages."""

    pair: str
    value: float
    source: str
    episodes: int
    budget: int
    band: tuple[float, float]
    band_why: str


@dataclass(frozen=True)
class Check:
    """One number of a book figure: a job of the preset's sweep, a metric, its range."""

    job: dict[str, Any]
    tag: str
    stat: str
    range: tuple[float, float]
    book: str


@dataclass(frozen=True)
class Exact:
    pair: str
    source: str
    checks: tuple[Check, ...]


def load(path: Path = PATH) -> tuple[dict[str, Reference], dict[str, Exact]]:
    """(deep RL references by pair, exact checks by figure)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:  # a tag such as !!python/object: refused, never built
        raise ConfigError(f"{path}: not plain YAML data ({' '.join(str(err).split())})"
                          ) from None
    rl, exact = {}, {}
    try:
        for name, r in data["pairs"].items():
            lo, hi = (float(x) for x in r["band"])
            if not (math.isfinite(lo) and lo <= hi and math.isfinite(float(r["value"]))):
                raise ValueError("band must be [low, high] with a finite low <= high")
            rl[name] = Reference(name, float(r["value"]), str(r["source"]),
                                 int(r["episodes"]), int(r["budget"]), (lo, hi),
                                 str(r["band_why"]))
        for name, e in data["exact"].items():
            checks = tuple(Check(dict(c["job"]), str(c["tag"]), str(c["stat"]),
                                 (float(c["range"][0]), float(c["range"][1])), str(c["book"]))
                           for c in e["checks"])
            exact[name] = Exact(name, str(e["source"]), checks)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise ConfigError(f"{path}: a malformed reference entry ({type(err).__name__}: {err})"
                          ) from None
    return rl, exact
