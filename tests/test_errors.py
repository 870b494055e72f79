"""One error hierarchy: every input error is a HamnetError (and still the built-in it refines)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from hamnet.errors import ConfigError, GraphError, HamnetError, MissingFileError


@pytest.mark.parametrize("module, name", [
    ("hamnet.basis", "BasisError"), ("hamnet.graph", "GraphError"), ("hamnet.scf", "GuessError"),
    ("hamnet.model", "ModelFileError"), ("hamnet.loss", "LossError"), ("hamnet.data", "DatasetError"),
    ("hamnet.train.config", "ConfigError"), ("hamnet.nn.config", "ConfigError"), ("hamnet.train.data", "DataError"),
    ("hamnet.train.checkpoint", "CheckpointError"), ("hamnet.train.evaluate", "EvaluationError"),
])
def test_every_hamnet_error_derives_from_the_base(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, HamnetError) and issubclass(cls, ValueError)


def test_one_config_error_and_missing_files_are_file_not_found():
    from hamnet.nn import config as nn_config
    from hamnet.train import config as train_config

    assert nn_config.ConfigError is train_config.ConfigError is ConfigError
    assert issubclass(MissingFileError, FileNotFoundError)


def test_build_mole_refuses_nan_and_bad_spin(water):
    from hamnet.molecule import build_mole

    Z, pos = water
    bad = pos.copy()
    bad[1, 2] = np.inf
    with pytest.raises(GraphError, match=r"non-finite \(NaN or inf\) coordinates for atom\(s\) \[1\]"):
        build_mole(Z, bad, "sto-3g")
    with pytest.raises(GraphError, match="inconsistent"):
        build_mole(*water, "sto-3g", spin=1)
    assert build_mole([1], [[0.0, 0.0, 0.0]], "sto-3g").spin == 1  # lowest spin by default


def test_read_geometry_names_the_file(tmp_path, water_xyz):
    from hamnet.molecule import read_geometry

    Z, pos = read_geometry(water_xyz)
    assert Z.tolist() == [8, 1, 1] and pos.shape == (3, 3)
    (tmp_path / "a.txt").write_text("not a molecule")
    with pytest.raises(GraphError, match="cannot read a molecule from .*a.txt"):
        read_geometry(tmp_path / "a.txt")
    with pytest.raises(MissingFileError, match="no geometry file"):
        read_geometry(tmp_path / "none.xyz")


def test_pbe_model_fits_a_pbe_pbe_store(tmp_path):
    """The functional-comparison bug: eval refused a 'pbe' model on a 'pbe,pbe' store."""
    from hamnet.data import open_dataset
    from hamnet.testing import make_store
    from hamnet.train.data import DataError, check_compatible

    ds = open_dataset(make_store(tmp_path / "s", n=5, xc="PBE,PBE"))
    check_compatible("sto-3g", "pbe", ds)
    check_compatible("sto-3g", "gga_x_pbe,gga_c_pbe", ds)
    with pytest.raises(DataError, match="b3lyp"):
        check_compatible("sto-3g", "b3lyp", ds)


def test_random_split_is_the_qh9_definition():
    from hamnet.data.splits import random_split

    sp = random_split(25)
    perm = np.random.RandomState(43).permutation(25)
    assert sp["train"] == sorted(perm[:20].tolist()) and sp["val"] == sorted(perm[20:22].tolist())
    assert sp["test"] == sorted(perm[22:].tolist())
    assert [len(v) for v in random_split(60, (0.7, 0.1), 0).values()] == [42, 6, 12]


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    from hamnet.atomic import atomic_write, atomic_write_text

    path = atomic_write_text(tmp_path / "a.txt", "old")

    def fail(fh):
        fh.write(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
