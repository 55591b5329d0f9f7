"""UCR dataset loading (bundled and UCR 2018 folders), errors, int8 quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coordinator.service.datasets import DatasetError, bundled_datasets, load_dataset, quantize_int8


def test_bundled_datasets_are_listed_and_load():
    names = bundled_datasets()
    assert {"GunPoint", "ItalyPowerDemand", "OSULeaf"} <= set(names)
    assert "BasicMotions" not in names  # multivariate
    assert "JapaneseVowels" not in names  # multivariate, unequal length
    expected = {"GunPoint": (50, 150, 150, 2), "ItalyPowerDemand": (67, 1029, 24, 2), "OSULeaf": (200, 242, 427, 6)}
    for name, (n_train, n_test, length, n_classes) in expected.items():
        ds = load_dataset(name)
        assert ds.x_train.shape == (n_train, length) and ds.x_test.shape == (n_test, length)
        assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
        assert ds.n_classes == n_classes and set(np.unique(ds.y_train)) == set(range(n_classes))
        assert ds.y_test.min() >= 0 and ds.y_test.max() < n_classes


def test_bundled_matches_aeon_reader():
    from aeon.datasets import load_from_ts_file

    from coordinator.service.datasets import aeon_data_dir

    ds = load_dataset("GunPoint")
    x, y = load_from_ts_file(str(aeon_data_dir() / "GunPoint" / "GunPoint_TRAIN.ts"))
    np.testing.assert_array_equal(ds.x_train, x[:, 0, :])
    assert [ds.class_labels[i] for i in ds.y_train] == list(y)


def _write_ucr(root: Path, name: str, train: list[str], test: list[str], ext: str = ".tsv") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}_TRAIN{ext}").write_text("\n".join(train) + "\n")
    (folder / f"{name}_TEST{ext}").write_text("\n".join(test) + "\n")


def test_ucr_2018_tsv_folder(tmp_path):
    _write_ucr(
        tmp_path, "Toy",
        ["2\t1.0\t2.0\t3.0", "-1\t0.5\t0.5\t0.5", "2.0\t3\t2\t1"],
        ["-1\t1\t1\t1", "2\t0\t0\t0"],
    )
    ds = load_dataset("Toy", data_dir=tmp_path)
    assert ds.class_labels == ("-1", "2")  # numeric order; '2.0' and '2' are one class
    assert list(ds.y_train) == [1, 0, 1] and list(ds.y_test) == [0, 1]
    np.testing.assert_array_equal(ds.x_train[2], [3, 2, 1])


def test_ts_folder_and_data_dir_wins_over_bundled(tmp_path):
    header = ["@problemName GunPoint", "@univariate true", "@equalLength true", "@classLabel true a b", "@data"]
    _write_ucr(tmp_path, "GunPoint", header + ["1,2,3:a", "3,2,1:b"], header + ["1,1,1:b"], ext=".ts")
    ds = load_dataset("GunPoint", data_dir=tmp_path)
    assert ds.x_train.shape == (2, 3) and ds.class_labels == ("a", "b") and list(ds.y_test) == [1]


def test_unknown_dataset_names_what_was_looked_for(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("NoSuchData", data_dir=tmp_path)
    msg = str(info.value)
    assert "NoSuchData" in msg and str(tmp_path) in msg and "_TRAIN.tsv" in msg
    assert "GunPoint" in msg and "OSULeaf" in msg  # the bundled names
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("GunPoint", data_dir=tmp_path / "missing")
    with pytest.raises(DatasetError, match="invalid dataset name"):
        load_dataset("../etc")


@pytest.mark.parametrize(
    ("train", "ext", "message"),
    [
        (["1\t0.1\tx"], ".tsv", "not a number"),
        (["1\t0.1\t0.2", "2\t0.1"], ".tsv", "unequal length"),
        (["1\t0.1\t?"], ".tsv", "missing values"),
        (["@univariate false", "@data", "1,2:1"], ".ts", "multivariate"),
        (["@classLabel true 1", "@data", "1,2:1:2"], ".ts", "univariate series"),
        (["@targetlabel true", "@data", "1,2:0.5"], ".ts", "regression"),
        (["1,2:1"], ".ts", "no @data"),
    ],
)
def test_malformed_files_are_reported(tmp_path, train, ext, message):
    good_test = ["1\t0.1\t0.2"] if ext == ".tsv" else ["@data", "1,2:1"]
    _write_ucr(tmp_path, "Bad", train, good_test, ext=ext)
    with pytest.raises(DatasetError, match=message):
        load_dataset("Bad", data_dir=tmp_path)


def test_single_class_is_rejected(tmp_path):
    _write_ucr(tmp_path, "One", ["1\t0\t1", "1\t1\t0"], ["1\t0\t0"])
    with pytest.raises(DatasetError, match="at least 2 classes"):
        load_dataset("One", data_dir=tmp_path)


def test_quantize_int8_uses_training_statistics(rng):
    x_train = rng.normal(5.0, 2.0, size=(40, 50))
    x_test = rng.normal(5.0, 2.0, size=(10, 50)) + 100.0  # far outside: clipped
    q_train, q_test = quantize_int8(x_train, x_test)
    assert q_train.dtype == np.int8 and q_test.dtype == np.int8
    mean = x_train.mean()
    p999 = np.percentile(np.abs(x_train - mean), 99.9)
    expected = np.clip(np.round((x_train - mean) / p999 * 127), -127, 127)
    np.testing.assert_array_equal(q_train, expected)
    assert np.mean(np.abs(q_train) == 127) <= 0.002  # only the top 0.1 % saturate
    assert np.all(q_test == 127)
    flat_train, flat_test = quantize_int8(np.ones((3, 4)), np.full((1, 4), 2.0))
    assert not flat_train.any() and np.all(flat_test == 127)  # constant set: scale 1
