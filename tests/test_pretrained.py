"""Shipped models by name, the default model of predict_guess, and the guard that keeps
an SCF from starting worse than PySCF's minao guess."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from pyscf import dft, gto, scf

import hamnet
from hamnet import pretrained
from hamnet.errors import HamnetError
from hamnet.scf import FunctionalMismatchWarning, GuessError, guard_guess, guess_dm, predict_guess

WATER = "O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692"


@pytest.fixture()
def shipped(tmp_path, monkeypatch):
    """A folder of shipped models holding one tiny random model, made the default."""
    model = hamnet.build_model("sto-3g", ["H", "O"], xc="hf", num_channels=4, num_layers=1)
    hamnet.save_model(model, tmp_path / "tiny-hf-sto3g.pt")
    (tmp_path / "tiny-hf-sto3g.md").write_text("# A tiny test model\n\nRandom weights.\n")
    pretrained.write_index(tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    pretrained._cached_load.cache_clear()
    return tmp_path, model


def test_index_lists_what_the_files_hold(shipped):
    folder, model = shipped
    (entry,) = hamnet.pretrained_models()
    assert entry["name"] == "tiny-hf-sto3g" and entry["xc"] == "hf"
    assert entry["basis"] == "sto-3g" and entry["elements"] == ["H", "O"]
    assert entry["description"] == "A tiny test model"
    mol = gto.M(atom=WATER, basis="sto-3g", verbose=0)
    by_name = hamnet.load_model("tiny-hf-sto3g")
    np.testing.assert_allclose(by_name.predict(mol), model.predict(mol), atol=1e-6)


def test_unknown_name_and_uncovered_molecule_name_the_shipped_models(shipped):
    with pytest.raises(HamnetError, match="no shipped model of that name.*tiny-hf-sto3g"):
        hamnet.load_model("no-such-model")
    with pytest.raises(HamnetError, match=r"basis 'def2-svp'.*tiny-hf-sto3g \(hf/sto-3g, elements H O\)"):
        pretrained.default_model("def2-svp", [1, 8])
    with pytest.raises(HamnetError, match="elements H C O"):
        pretrained.default_model("STO-3G", ["O", "C", "H"])
    assert pretrained.default_model("STO_3G", [8, 1]) is pretrained.default_model("sto-3g", [1])


def test_predict_guess_without_model_uses_the_shipped_one(shipped):
    folder, model = shipped
    mol = gto.M(atom=WATER, basis="sto-3g", verbose=0)
    mf = scf.RHF(mol)
    got = predict_guess(mf, guard=False)
    np.testing.assert_allclose(got, guess_dm(mf, model.predict(mol)), atol=1e-6)
    mf_dft = dft.RKS(mol, xc="pbe")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            predict_guess(mf_dft, guard=False)
    mismatch = [w for w in caught if issubclass(w.category, FunctionalMismatchWarning)]
    assert len(mismatch) <= 1  # one line per pair of functionals, not one per SCF


def _converged(mol):
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-12
    mf.kernel()
    return mf


def test_guard_keeps_a_good_guess_and_rejects_a_bad_one(monkeypatch):
    """Default mode: spectrum and density checks, no Fock build; bad guesses fall back."""
    from hamnet.scf import MAX_DENSITY_SHIFT

    mol = gto.M(atom=WATER, basis="def2-svp", verbose=0)
    ref = _converged(mol)
    mf = scf.RHF(mol)
    monkeypatch.setattr(mf, "energy_tot", lambda *a, **k: pytest.fail("no Fock build"))
    monkeypatch.setattr(mf, "get_fock", lambda *a, **k: pytest.fail("no Fock build"))
    good = guess_dm(mf, ref.get_fock())
    dm, rep = guard_guess(mf, good, ref.get_fock())
    assert rep.used == "hamnet" and rep.reason == "density" and dm is good
    minao = mf.get_init_guess(mol, "minao")
    assert rep.density_shift == pytest.approx(np.abs(good - minao).max(), abs=1e-12)
    assert 0.05 < rep.density_shift < MAX_DENSITY_SHIFT  # the converged density is near minao's
    assert rep.e_hamnet is None and rep.e_minao is None
    # a scrambled Fock matrix: a valid idempotent density, far from any molecule's
    rng = np.random.default_rng(0)
    noise = rng.normal(size=ref.get_fock().shape)
    bad = guess_dm(mf, ref.get_fock() + (noise + noise.T))
    dm, rep = guard_guess(mf, bad)
    assert rep.used == "minao" and rep.reason == "density" and rep.density_shift > MAX_DENSITY_SHIFT
    np.testing.assert_allclose(dm, minao)
    # both SCFs converge to the same energy
    e_bad = scf.RHF(mol).set(conv_tol=1e-11).kernel(dm0=dm)
    assert abs(e_bad - ref.e_tot) < 1e-7
    with pytest.raises(GuessError, match="guard mode"):
        guard_guess(mf, good, mode="cheap")
    with pytest.raises(GuessError, match="guard must be"):
        predict_guess(mf, object(), guard="yes")


def test_guard_energy_mode_compares_with_minao_after_one_cycle():
    """mode="energy": E[P_hamnet] against E[P_1], P_1 the density of minao's first cycle."""
    mol = gto.M(atom=WATER, basis="def2-svp", verbose=0)
    ref = _converged(mol)
    mf = scf.RHF(mol)
    minao = mf.get_init_guess(mol, "minao")
    p1 = guess_dm(mf, mf.get_fock(dm=minao))
    e1 = mf.energy_tot(dm=p1)
    good = guess_dm(mf, ref.get_fock())
    dm, rep = guard_guess(mf, good, ref.get_fock(), mode="energy")
    assert rep.used == "hamnet" and rep.reason == "energy" and dm is good
    assert abs(rep.e_hamnet - ref.e_tot) < 1e-8
    assert rep.e_minao == pytest.approx(e1, abs=1e-10) and rep.e_minao > ref.e_tot
    np.testing.assert_allclose(np.einsum("ij,ji->", p1, mf.get_ovlp()), mol.nelectron, atol=1e-10)
    # a guess that passes the density check but is worse than minao's first cycle
    huckel = mf.get_init_guess(mol, "huckel")
    assert mf.energy_tot(dm=huckel) > e1
    dm, rep = guard_guess(mf, huckel, mode="energy")
    assert rep.reason == "energy" and rep.used == "minao" and rep.e_hamnet > rep.e_minao
    np.testing.assert_allclose(dm, minao)


def test_the_shipped_index_matches_the_shipped_files():
    """Every model in hamnet/pretrained/ is listed with what its file holds, and has a card."""
    index = pretrained.PRETRAINED_DIR / pretrained.INDEX_NAME
    entries = json.loads(index.read_text())["models"]
    assert entries, "hamnet ships at least one pretrained model"
    for e in entries:
        model = hamnet.load_model(e["name"])
        assert model.basis.basis == e["basis"] and model.xc == e["xc"]
        card = (pretrained.PRETRAINED_DIR / e["card"]).read_text()
        for needed in ("Data", "Level of theory", "MAE", "SCF", "Training command", "Licence"):
            assert needed in card, f"model card {e['card']} lacks a {needed!r} section"


def test_guess_and_models_commands_use_the_shipped_model(shipped, tmp_path, capsys):
    from hamnet.cli import main

    xyz = tmp_path / "water.xyz"
    xyz.write_text("3\nwater\n" + WATER.replace("; ", "\n") + "\n")
    assert main(["guess", str(xyz), "--basis", "sto-3g"]) == 0
    out = capsys.readouterr().out
    assert "model shipped tiny-hf-sto3g" in out and "minao" in out and "guard:" in out
    assert main(["models"]) == 0
    assert "tiny-hf-sto3g: hf/sto-3g, elements H O" in capsys.readouterr().out
    assert main(["models", "--card", "tiny-hf-sto3g"]) == 0
    assert "A tiny test model" in capsys.readouterr().out
    # a molecule no shipped model covers: one line naming the shipped models, exit 2
    nh3 = tmp_path / "nh3.xyz"
    nh3.write_text("4\nammonia\nN 0 0 0\nH 0 0.94 0.38\nH 0.81 -0.47 0.38\nH -0.81 -0.47 0.38\n")
    assert main(["guess", str(nh3), "--basis", "sto-3g"]) == 2
    err = capsys.readouterr().err
    assert "no shipped model for basis 'sto-3g' and elements H N" in err and "tiny-hf-sto3g" in err


def test_predict_command_without_model(shipped, tmp_path, monkeypatch, capsys):
    from hamnet.cli import main

    folder, model = shipped
    # the shipped test model is sto-3g; predict's default basis is def2-svp: refused clearly
    xyz = tmp_path / "water.xyz"
    xyz.write_text("3\nwater\n" + WATER.replace("; ", "\n") + "\n")
    assert main(["predict", str(xyz), "--out", str(tmp_path / "F.npy")]) == 2
    assert "no shipped model for basis 'def2-svp'" in capsys.readouterr().err
    monkeypatch.setattr(pretrained, "default_model",
                        lambda basis, els: pretrained.load_pretrained("tiny-hf-sto3g"))
    assert main(["predict", str(xyz), "--out", str(tmp_path / "F.npy")]) == 0
    mol = gto.M(atom=WATER, basis="sto-3g", verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "F.npy"), model.predict(mol), atol=1e-6)


def test_guard_spectrum_check_needs_no_fock_build(monkeypatch):
    """A predicted orbital far below every atom's core level is refused without a Fock build."""
    from pyscf.scf import atom_hf

    from hamnet.scf import CORE_MARGIN

    mol = gto.M(atom=WATER, basis="def2-svp", verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # PySCF's own internals
        o_1s = min(atom_hf.get_atm_nrhf(mol)["O"][1])  # free-atom HF O 1s, about -20.7 Ha
    for mf in (_converged(mol), dft.RKS(mol, xc="b3lyp5").run(conv_tol=1e-10)):
        assert mf.mo_energy[0] > o_1s - CORE_MARGIN + 1  # real HF and DFT matrices lie far above
        fresh = mf.__class__(mol) if not hasattr(mf, "xc") else dft.RKS(mol, xc=mf.xc)
        dm, rep = guard_guess(fresh, guess_dm(fresh, mf.get_fock()), mf.get_fock())
        assert rep.used == "hamnet" and rep.reason == "density"
    fock = mf.get_fock()
    spurious = fock.copy()
    spurious[5, 5] = o_1s - CORE_MARGIN - 5.0  # one AO pushed to a spurious deep state
    fresh = scf.RHF(mol)
    monkeypatch.setattr(fresh, "energy_tot", lambda *a, **k: pytest.fail("no Fock build"))
    dm, rep = guard_guess(fresh, guess_dm(fresh, spurious), spurious)
    assert (rep.used, rep.reason, rep.density_shift, rep.e_hamnet, rep.e_minao) == (
        "minao", "spectrum", None, None, None)
    np.testing.assert_allclose(dm, fresh.get_init_guess(mol, "minao"))
