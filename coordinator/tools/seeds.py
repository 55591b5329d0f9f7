"""Repetitions over seeds, shared by ``rocknet run|compare|sweep --seeds K``.

Repetition ``k`` of a command started with ``--seed S`` runs with seed ``S + k``
(:func:`seed_values`); its run directory is ``<parent>/seed<S+k>`` (:func:`seed_dir`). The
epoch shuffles, the model's random parts and any random data placement all follow the seed.
A measure over the seeds is a :class:`SeedStat`: the mean and the population standard
deviation (``ddof=0``) of the seeds that have a value.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


def seed_values(first_seed: int, count: int) -> tuple[int, ...]:
    """The seeds ``first_seed .. first_seed + count - 1`` of ``--seed first_seed --seeds count``."""
    if count < 1:
        raise ValueError(f"--seeds must be >= 1, got {count}")
    return tuple(first_seed + k for k in range(count))


def seed_dir(parent: Path, seed: int) -> Path:
    """The run directory of seed ``seed`` under ``parent``: ``parent/seed<seed>``."""
    return Path(parent) / f"seed{seed}"


@dataclass(frozen=True)
class SeedStat:
    """One measure over the seeds (None where no seed has a value), in the measure's unit."""

    mean: float | None
    std: float | None  # population standard deviation over the seeds (ddof=0)
    n: int  # seeds that had a value


def stat(values: Sequence[float | None]) -> SeedStat:
    """Mean and std of the values that are not None."""
    got = np.array([v for v in values if v is not None], dtype=np.float64)
    if got.size == 0:
        return SeedStat(None, None, 0)
    return SeedStat(float(got.mean()), float(got.std()), int(got.size))


def cell(s: SeedStat, digits: int = 4) -> str:
    """``mean ± std`` for a table (``–`` where no seed had a value)."""
    if s.mean is None or s.std is None:
        return "–"
    return f"{s.mean:.{digits}g} ± {s.std:.2g}"


def positive_int(text: str) -> int:
    """``--seeds`` / ``--jobs``: an integer >= 1 (argparse type; experiment files too)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


positive_int.expects = "an integer >= 1"  # type: ignore[attr-defined]  # how experiment files name it
positive_int.toml_types = (int,)  # type: ignore[attr-defined]  # seeds = 3, not "3" or [3]


def add_seed_flags(p: argparse.ArgumentParser) -> None:
    """``--seeds K`` and ``--jobs J`` (run, compare, sweep)."""
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="repetitions with seeds SEED..SEED+K-1 (one run directory each, seed<S>/), "
                        "tables of mean ± std (default 1)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="runs at once (default: as many as os.cpu_count() holds, a process run of "
                        "N devices counting N+1, an in-process run 1)")
