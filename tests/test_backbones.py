"""Every registered backbone gets the shared tests of hamnet.testing.BackboneTests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hamnet.model import load_model
from hamnet.nn.config import BACKBONES
from hamnet.testing import WATER_POS, WATER_Z, BackboneTests

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class TestEquivariant(BackboneTests):
    config = dict(backbone="equivariant", tracegrad=True, num_channels=3, radial_hidden=16, tracegrad_channels=3,
                  tracegrad_hidden=16, tracegrad_dim=8, tracegrad_alpha=1.0)


class TestEquivariantWithoutTraceGrad(BackboneTests):
    config = dict(backbone="equivariant", tracegrad=False, num_channels=3, radial_hidden=16)


class TestPET(BackboneTests):
    config = dict(backbone="pet", num_layers=2, pet_dim=16, pet_heads=2, pet_ff=32, pet_pair_hidden=32)


class TestSO2(BackboneTests):  # pair_cutoff 2.0 drops the far pairs of TEST_POS (more in tests/test_so2.py)
    config = dict(backbone="so2", tracegrad=True, num_channels=3, radial_hidden=16, tracegrad_channels=3, tracegrad_hidden=16,
                  tracegrad_dim=8, tracegrad_alpha=1.0, pair_cutoff=2.0)


def test_default_backbone_is_so2_and_old_files_keep_theirs():
    """build_model() and a config without a backbone give the SO(2) network; a format-1
    model file (no backbone key) still reads as the e3nn network it holds."""
    from hamnet.model import build_model
    from hamnet.nn.config import DEFAULT_BACKBONE
    from hamnet.nn.so2 import SO2Model
    from hamnet.train.config import load_config

    assert DEFAULT_BACKBONE == "so2"
    assert isinstance(build_model("sto-3g", ["H", "O"], num_channels=2, radial_hidden=4), SO2Model)
    assert load_config({"data": {"path": "x"}}).model["backbone"] == "so2"
    assert load_model(FIXTURES / "model_v1.pt").backbone == "equivariant"


def test_every_backbone_has_a_test_class():
    """A backbone added to the registry adds its ``BackboneTests`` class in this file."""
    tested = {cls.config["backbone"] for cls in BackboneTests.__subclasses__() if cls.__module__ == __name__}
    assert set(BACKBONES) <= tested, f"no BackboneTests class here for {sorted(set(BACKBONES) - tested)}"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_model_file_of_each_format_version_loads_and_predicts_as_recorded(version):
    """tests/fixtures/model_v<N>.pt were written by make_model_files.py in that version's layout."""
    model = load_model(FIXTURES / f"model_v{version}.pt")
    expected = np.array(json.loads((FIXTURES / "model_files.json").read_text())["water_F"])
    assert model.backbone == "equivariant" and model.tracegrad and model.xc == "pbe"
    F = model.predict((WATER_Z, WATER_POS))
    assert F.shape == (7, 7) and np.abs(F - expected).max() < 1e-6  # float32 model
    assert np.abs(expected).max() > 0.1
