"""Shared fixtures: warm numba's cache once per session, load bundled datasets once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest


@pytest.fixture(scope="session")
def warm_numba() -> None:
    """Compile (or load from numba's on-disk cache) every node kernel once per session.

    Request it in any test that runs node kernels so that compile time is paid once and
    not inside a test with a timeout.
    """
    from node.ml import head
    from node.ml import minirocket
    from node.ml import scaling

    minirocket.warm_up()
    scaling.warm_up()
    head.warm_up()


@dataclass(frozen=True)
class QuantizedDataset:
    """A bundled dataset with its int8 train/test series (DESIGN 1.1)."""

    name: str
    x_train: np.ndarray  # int8 [n_train, L]
    y_train: np.ndarray  # int64
    x_test: np.ndarray  # int8 [n_test, L]
    y_test: np.ndarray  # int64
    n_classes: int


@pytest.fixture(scope="session")
def bundled_int8() -> Callable[[str], QuantizedDataset]:
    """``bundled_int8("GunPoint")``: a bundled dataset, loaded and quantized once per session."""
    from coordinator.service.datasets import load_dataset, quantize_int8

    @functools.cache
    def load(name: str) -> QuantizedDataset:
        ds = load_dataset(name)
        x_train, x_test = quantize_int8(ds.x_train, ds.x_test)
        return QuantizedDataset(name, x_train, ds.y_train, x_test, ds.y_test, ds.n_classes)

    return load


@pytest.fixture()
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test."""
    return np.random.default_rng(12345)
