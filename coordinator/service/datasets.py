"""UCR time-series classification datasets: aeon's bundled files or a UCR 2018 folder.

Never downloads. The files are read with our own parser of the two UCR formats:

* ``.ts`` (sktime/aeon): ``@`` header lines (``@univariate``, ``@equalLength``,
  ``@classLabel true l1 l2 ...``), then ``@data`` and one case per line,
  ``v1,v2,...,vL:label``;
* ``.tsv`` (UCR 2018 archive): one case per line, ``label<TAB>v1<TAB>...<TAB>vL``.

A dataset ``Name`` is looked for as ``<dir>/<Name>/<Name>_TRAIN.tsv`` (or ``.ts``) and the
matching ``_TEST`` file, first in ``data_dir`` (when given) and then in aeon's bundled data
folder (found without importing aeon). Only univariate, equal-length classification data is
accepted; anything else is a :class:`DatasetError` that says what was looked for.

Quantization to int8 (DESIGN 1.1): ``clip(round((x - mean) / p99.9(|x - mean|) * 127))`` with
``mean`` and the 99.9th percentile taken over all values of the training set.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A dataset that cannot be found or read, with what was looked for."""


@dataclass(frozen=True)
class Dataset:
    """A univariate, equal-length classification dataset with its train/test split.

    ``y_*`` are class indices ``0 .. C-1`` into ``class_labels`` (the file's labels, sorted
    as the file header lists them, else in sorted order).
    """

    name: str
    x_train: np.ndarray  # float64 [n_train, L]
    y_train: np.ndarray  # int64 [n_train]
    x_test: np.ndarray  # float64 [n_test, L]
    y_test: np.ndarray  # int64 [n_test]
    class_labels: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.class_labels)

    @property
    def series_length(self) -> int:
        return int(self.x_train.shape[1])


def aeon_data_dir() -> Path | None:
    """aeon's bundled data folder (``aeon/datasets/data``), or None if aeon is not installed."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data"
        if path.is_dir():
            return path
    return None


def _ts_header(path: Path) -> dict[str, str]:
    header: dict[str, str] = {}
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.lower().startswith("@data"):
                break
            if line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
    return header


def bundled_datasets() -> list[str]:
    """Names of the univariate, equal-length classification datasets bundled with aeon."""
    root = aeon_data_dir()
    if root is None:
        return []
    names = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name
        train, test = folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts"
        if not (train.is_file() and test.is_file()):
            continue
        header = _ts_header(train)
        if header.get("univariate", "").lower() != "true":
            continue
        if header.get("equallength", "true").lower() != "true":
            continue
        if not header.get("classlabel", "").lower().startswith("true"):
            continue
        names.append(name)
    return names


def _parse_ts(path: Path) -> tuple[list[list[float]], list[str], list[str] | None]:
    """Values, labels and the header's class labels (None if not listed) of a ``.ts`` file."""
    rows: list[list[float]] = []
    labels: list[str] = []
    header_labels: list[str] | None = None
    in_data = False
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@data"):
                    in_data = True
                elif low.startswith("@univariate") and low.split()[-1] == "false":
                    raise DatasetError(f"{path}: multivariate data is not supported (univariate only)")
                elif low.startswith("@equallength") and low.split()[-1] == "false":
                    raise DatasetError(f"{path}: series of unequal length are not supported")
                elif low.startswith("@classlabel"):
                    parts = line.split()
                    if len(parts) < 2 or parts[1].lower() != "true":
                        raise DatasetError(f"{path}: not a classification dataset (@classLabel false)")
                    header_labels = parts[2:] or None
                elif low.startswith("@targetlabel"):
                    raise DatasetError(f"{path}: a regression dataset (@targetlabel), not classification")
                continue
            fields = line.split(":")
            if len(fields) != 2:
                raise DatasetError(
                    f"{path}:{lineno}: expected one univariate series and a label "
                    f"('v1,v2,...:label'), found {len(fields) - 1} ':' separators"
                )
            rows.append(_floats(fields[0].split(","), path, lineno))
            labels.append(fields[1].strip())
    if not in_data:
        raise DatasetError(f"{path}: no @data section: not a .ts file")
    return rows, labels, header_labels


def _parse_tsv(path: Path) -> tuple[list[list[float]], list[str], None]:
    rows: list[list[float]] = []
    labels: list[str] = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = line.split("\t") if "\t" in line else line.split(",")
            if len(fields) < 2:
                raise DatasetError(f"{path}:{lineno}: expected 'label<TAB>v1<TAB>...', got one field")
            labels.append(_label_text(fields[0].strip()))
            rows.append(_floats(fields[1:], path, lineno))
    return rows, labels, None


def _label_text(label: str) -> str:
    """UCR .tsv labels are numbers, sometimes written '1.0': normalise whole numbers."""
    try:
        value = float(label)
    except ValueError:
        return label
    return str(int(value)) if value.is_integer() else label


def _floats(fields: list[str], path: Path, lineno: int) -> list[float]:
    out = []
    for field in fields:
        field = field.strip()
        if field in ("?", "NaN", "nan", ""):
            raise DatasetError(f"{path}:{lineno}: missing values are not supported")
        try:
            out.append(float(field))
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: {field!r} is not a number") from None
    return out


def _read_split(path: Path) -> tuple[np.ndarray, list[str], list[str] | None]:
    if path.suffix == ".ts":
        rows, labels, header_labels = _parse_ts(path)
    else:
        rows, labels, header_labels = _parse_tsv(path)
    if not rows:
        raise DatasetError(f"{path}: no series in the file")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise DatasetError(
            f"{path}: series of unequal length ({min(lengths)}..{max(lengths)} samples) are not supported"
        )
    x = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise DatasetError(f"{path}: non-finite values")
    return x, labels, header_labels


def _find_files(name: str, folders: list[Path]) -> tuple[Path, Path] | None:
    for root in folders:
        for ext in (".tsv", ".ts"):
            train = root / name / f"{name}_TRAIN{ext}"
            test = root / name / f"{name}_TEST{ext}"
            if train.is_file() and test.is_file():
                return train, test
    return None


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load ``name`` from ``data_dir`` (UCR 2018 layout) or aeon's bundled files.

    Raises:
        DatasetError: unknown name, malformed file, multivariate or unequal-length data.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DatasetError(f"invalid dataset name {name!r}")
    folders: list[Path] = []
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DatasetError(f"data directory {data_dir} does not exist")
        folders.append(data_dir)
    bundled = aeon_data_dir()
    if bundled is not None:
        folders.append(bundled)
    found = _find_files(name, folders)
    if found is None:
        looked = ", ".join(f"{f}/{name}/{name}_TRAIN.tsv|.ts" for f in folders) or "(no folder)"
        raise DatasetError(
            f"dataset {name!r} not found; looked for {looked}. Bundled datasets: "
            f"{', '.join(bundled_datasets()) or 'none (aeon is not installed)'}; "
            "pass --data-dir with a UCR 2018 archive folder for others"
        )
    train_path, test_path = found
    x_train, labels_train, header_labels = _read_split(train_path)
    x_test, labels_test, _ = _read_split(test_path)
    if x_train.shape[1] != x_test.shape[1]:
        raise DatasetError(
            f"{name}: train series have {x_train.shape[1]} samples, test series {x_test.shape[1]}"
        )
    seen = set(labels_train) | set(labels_test)
    if header_labels is not None and seen <= set(header_labels):
        class_labels = tuple(header_labels)
    else:
        class_labels = tuple(sorted(seen, key=_label_sort_key))
    if len(class_labels) < 2:
        raise DatasetError(f"{name}: needs at least 2 classes, found {list(class_labels)}")
    index = {label: i for i, label in enumerate(class_labels)}
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=np.array([index[v] for v in labels_train], dtype=np.int64),
        x_test=x_test,
        y_test=np.array([index[v] for v in labels_test], dtype=np.int64),
        class_labels=class_labels,
    )


def _label_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


#: ``quantize_int8``'s scales: ``"global"`` (DESIGN 1.1, the function's default), ``"mulaw"``
#: (companded) and ``"auto"`` (:func:`auto_scale` picks one of the two from the training split;
#: the run's default, ``RunArgs.quantization``).
QUANTIZATIONS: tuple[str, ...] = ("global", "mulaw", "auto")
#: Our own choice (issue 17, docs/ml-core.md "The quantization rule"): the fewest int8 codes
#: the median training series must span under the global linear scale, 16 (4 bits). A series
#: spanning 2 or 3 codes is a step function to MiniRocket: its convolution outputs take a
#: handful of values, so the golden-ratio bias quantiles fall on the same few numbers and
#: most PPV features repeat one another (Covid3Month_disc: 2 codes). 16 codes keep the
#: rounding error (1/sqrt(12) of a code) under 2 % of the series' range. Every bundled
#: dataset but Covid3Month_disc spans 63 codes or more, so any threshold from 3 to 63 makes
#: the same choices there.
MIN_SERIES_CODES = 16


def _global_params(x_train: np.ndarray) -> tuple[float, np.ndarray, float]:
    mean = float(np.mean(x_train))
    dev = np.abs(x_train - mean)
    top = float(np.percentile(dev, 99.9))
    return mean, dev, (top if top > 0.0 else 1.0)


def series_codes(x_train: np.ndarray) -> float:
    """The median, over training series, of the int8 codes a series spans (``max - min + 1``)
    under the global linear scale. Training split only."""
    q = quantize_int8(x_train, x_train[:0], "global")[0].astype(np.int64)
    if q.ndim != 2 or q.shape[0] == 0:
        raise ValueError(f"series_codes needs a non-empty [n, L] training split, got shape {q.shape}")
    return float(np.median(q.max(axis=1) - q.min(axis=1) + 1))


def auto_scale(x_train: np.ndarray) -> str:
    """``quantize_int8``'s ``"auto"`` choice, from the training split only: ``"mulaw"`` when the
    global linear scale leaves the median training series fewer than :data:`MIN_SERIES_CODES`
    codes (:func:`series_codes`), else ``"global"``."""
    return "mulaw" if series_codes(np.asarray(x_train, dtype=np.float64)) < MIN_SERIES_CODES else "global"


def quantize_int8(x_train: np.ndarray, x_test: np.ndarray, scale: str = "global") -> tuple[np.ndarray, np.ndarray]:
    """int8 inputs (DESIGN 1.1), from statistics of the training split only.

    ``scale="global"`` (the paper's, the default): ``clip(round((x - mean) / p99.9(|x - mean|)
    * 127), -127, 127)``; ``mean`` and the 99.9th percentile of ``|x - mean|`` come from all
    values of the training set and are applied to both splits (a constant training set gets
    scale 1).

    ``scale="mulaw"`` (issue 17): the same mean and p99.9, companded around the
    median ``s0`` of ``|x - mean|``: ``clip(round(sign(d) * log1p(|d| / s0) / log1p(p99.9 /
    s0) * 127), -127, 127)`` with ``d = x - mean``. Monotone and odd, so the order and sign
    of every value survive; heavy-tailed data (Covid3Month_disc: p99.9 is 150x the median
    deviation, so under ``"global"`` the median series keeps 2 distinct int8 values) keeps its
    small values apart. The code generator that writes the int8 series into the firmware
    can apply it as well as the linear scale (two constants, computed on the host).

    ``scale="auto"`` (issue 17, the run's default): ``"mulaw"`` or ``"global"`` as
    :func:`auto_scale` decides from the training split.
    """
    if scale not in QUANTIZATIONS:
        raise ValueError(f"quantization scale must be one of {QUANTIZATIONS}, got {scale!r}")
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if scale == "auto":
        scale = auto_scale(x_train)
    mean, dev, top = _global_params(x_train)

    if scale == "mulaw":
        s0 = float(np.median(dev))
        s0 = s0 if s0 > 0.0 else top
        denom = float(np.log1p(top / s0))

        def q(x: np.ndarray) -> np.ndarray:
            d = x - mean
            y = np.sign(d) * np.log1p(np.abs(d) / s0) / denom * 127.0
            return np.clip(np.round(y), -127, 127).astype(np.int8)

        return q(x_train), q(x_test)

    def q_linear(x: np.ndarray) -> np.ndarray:
        return np.clip(np.round((x - mean) / top * 127.0), -127, 127).astype(np.int8)

    return q_linear(x_train), q_linear(x_test)
