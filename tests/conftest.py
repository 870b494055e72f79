"""Shared fixtures: molecules, tiny stores, tiny models (builders in :mod:`hamnet.testing`)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch

from hamnet.testing import TINY_MODEL, WATER_POS, WATER_Z, make_store, tiny_config


@pytest.fixture(autouse=True)
def functional_warnings_afresh():
    """hamnet.scf warns once per pair of functionals and process; every test starts afresh."""
    from hamnet import scf

    scf._WARNED.clear()
    yield


@pytest.fixture(autouse=True, scope="session")
def hamnet_logs_at_info():
    """The tests are the application here: hamnet's loggers at INFO, as ``hamnet.cli.main`` sets
    them (library code leaves logger state alone), so make.log holds every line."""
    log = logging.getLogger("hamnet")
    old = log.level
    log.setLevel(logging.INFO)
    yield
    log.setLevel(old)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark(name)``: the script ``benchmarks/NAME.py`` loaded as a module
    (benchmarks/ is not a package)."""
    root = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture
def water():
    """``(Z, pos)`` of water, Angstrom (fresh copies: tests may modify them)."""
    return WATER_Z.copy(), WATER_POS.copy()


@pytest.fixture(scope="session")
def water_xyz(tmp_path_factory):
    """An .xyz file of water."""
    path = tmp_path_factory.mktemp("geometries") / "water.xyz"
    lines = [f"{s} {x:.4f} {y:.4f} {z:.4f}" for s, (x, y, z) in zip("OHH", WATER_POS)]
    path.write_text("3\nwater\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of 10 RHF/STO-3G waters with split 'tiny' (6/2/2)."""
    return make_store(tmp_path_factory.mktemp("data") / "water", n=10)


@pytest.fixture
def config_for():
    """``config_for(store, **overrides)``: a run config of a few steps (:func:`hamnet.testing.tiny_config`)."""
    return tiny_config


@pytest.fixture(scope="session")
def tiny_model():
    """A float64 TraceGrad model of H and O in STO-3G, trained on nothing (xc ``pbe``)."""
    from hamnet.model import build_model

    torch.manual_seed(0)
    return build_model("sto-3g", ["H", "O"], dtype=torch.float64, xc="pbe", **TINY_MODEL).eval()


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory, tiny_model):
    """``tiny_model`` saved as a model file."""
    from hamnet.model import save_model

    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_model(tiny_model, path)
    return path
