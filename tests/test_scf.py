"""The predicted Fock matrix as a PySCF initial guess, checked against PySCF's own SCF.

References are PySCF SCF runs converged to 1e-12 Ha; the "model" is a fake that returns
the exact (or a perturbed) converged Fock matrix, so nothing here depends on training.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import scipy.linalg
import pytest
import torch
from pyscf import dft, scf

from hamnet.basis import BasisError, OrbitalBasis
from hamnet.scf import (
    FunctionalMismatchWarning,
    GuessError,
    build_mole,
    check_functional,
    guess_dm,
    make_scf,
    predict_guess,
    read_mole,
    run_scf,
    same_functional,
)

# PySCF's own 'atom'/'huckel' guesses call its deprecated remove_linear_dep_ internally.
pytestmark = pytest.mark.filterwarnings(
    "ignore:remove_linear_dep_ is deprecated:DeprecationWarning"
)

from hamnet.testing import WATER_POS, WATER_Z  # noqa: E402  (Angstrom)
REF_TOL = 1e-12  # Hartree, conv_tol of the references
E_TOL = 1e-8  # Hartree; runs use PySCF's default conv_tol 1e-9


def water(basis="def2-svp", charge=0, spin=0):
    return build_mole(WATER_Z, WATER_POS, basis, charge=charge, spin=spin)


def converged(mol, xc=None):
    """Tightly converged PySCF SCF object of ``mol``."""
    run, mf = run_scf(mol, "minao", xc=xc, conv_tol=REF_TOL)
    assert run.converged
    return mf


def symmetric_noise(n, sigma, seed=0):
    """Symmetric matrix with N(0, sigma^2) entries (Hartree)."""
    e = np.random.default_rng(seed).normal(scale=sigma, size=(n, n))
    return (e + e.T) / np.sqrt(2.0)


class OracleModel:
    """Fake model: predicts the converged Fock matrix of any molecule (plus noise)."""

    def __init__(self, basis, elements, xc=None, sigma=0.0):
        self.basis = OrbitalBasis(basis, elements)
        self.xc = xc
        self.sigma = sigma
        self.calls = 0

    def predict(self, mol):
        self.calls += 1
        f = converged(mol, None if self.xc in (None, "HF") else self.xc).get_fock()
        return f + symmetric_noise(f.shape[0], self.sigma) if self.sigma else f


@pytest.fixture(scope="module")
def hf_ref():
    return converged(water())


@pytest.fixture(scope="module")
def pbe_ref():
    return converged(water(), "pbe")


# ---- exact and noisy guesses --------------------------------------------------------


@pytest.mark.parametrize("xc", [None, "pbe"])
def test_exact_fock_converges_at_once(xc, hf_ref, pbe_ref):
    ref = pbe_ref if xc else hf_ref
    fock = ref.get_fock()  # h1e + veff of the converged density, Hartree
    run, mf = run_scf(ref.mol, lambda m: guess_dm(m, fock), name="exact", xc=xc)
    assert run.converged and run.cycles <= 2
    assert abs(run.e_tot - ref.e_tot) < E_TOL
    dm0 = guess_dm(make_scf(ref.mol, xc), fock)
    np.testing.assert_allclose(dm0, ref.make_rdm1(), atol=1e-6)


@pytest.mark.parametrize("sigma", [1e-4, 1e-3, 3e-2])
def test_noisy_fock_converges_to_same_energy(sigma, hf_ref):
    """Entrywise N(0, sigma^2) Hartree symmetric noise on every element of F."""
    fock = hf_ref.get_fock() + symmetric_noise(hf_ref.mol.nao, sigma)
    run, _ = run_scf(hf_ref.mol, lambda m: guess_dm(m, fock), name="noisy")
    assert run.converged
    assert abs(run.e_tot - hf_ref.e_tot) < E_TOL
    if sigma <= 1e-4:  # a good prediction must beat PySCF's default guess
        minao, _ = run_scf(hf_ref.mol, "minao")
        assert run.cycles < minao.cycles


def test_noisy_fock_kohn_sham(pbe_ref):
    fock = pbe_ref.get_fock() + symmetric_noise(pbe_ref.mol.nao, 1e-3, seed=1)
    run, _ = run_scf(pbe_ref.mol, lambda m: guess_dm(m, fock), name="noisy", xc="pbe")
    assert run.converged and abs(run.e_tot - pbe_ref.e_tot) < E_TOL


# ---- open shells ----------------------------------------------------------------------


@pytest.mark.parametrize("charge,spin", [(1, 1), (0, 2)])
def test_density_invariants(charge, spin, hf_ref):
    """tr(D_s S) = N_s and D_s S D_s = D_s for the closed-shell F used for both spins."""
    mol = water(charge=charge, spin=spin)
    for mf in (scf.UHF(mol), dft.UKS(mol, xc="pbe"), scf.ROHF(mol)):
        dm = np.asarray(guess_dm(mf, hf_ref.get_fock()))
        s = mol.intor("int1e_ovlp")
        assert dm.shape == (2, mol.nao, mol.nao)
        for d, n in zip(dm, mol.nelec):
            assert np.trace(d @ s) == pytest.approx(n, abs=1e-10)
            np.testing.assert_allclose(d @ s @ d, d, atol=1e-10)
    dm = guess_dm(scf.RHF(hf_ref.mol), hf_ref.get_fock())
    s = hf_ref.get_ovlp()
    assert np.trace(dm @ s) == pytest.approx(hf_ref.mol.nelectron, abs=1e-10)
    np.testing.assert_allclose(dm @ s @ dm, 2 * dm, atol=1e-10)


def test_uks_cation_from_closed_shell_and_spin_resolved_fock(pbe_ref):
    mol = water(charge=1, spin=1)
    ref = converged(mol, "pbe")
    closed, _ = run_scf(mol, lambda m: guess_dm(m, pbe_ref.get_fock()), name="closed", xc="pbe")
    assert closed.converged and abs(closed.e_tot - ref.e_tot) < E_TOL
    f_ab = ref.get_fock()  # (2, nao, nao), alpha and beta
    exact, _ = run_scf(mol, lambda m: guess_dm(m, f_ab), name="exact", xc="pbe")
    assert exact.converged and exact.cycles <= 2 and abs(exact.e_tot - ref.e_tot) < E_TOL


def test_rohf_triplet(hf_ref):
    mol = water(spin=2)
    ref = scf.ROHF(mol).set(conv_tol=REF_TOL, verbose=0)
    ref.kernel()
    mf = scf.ROHF(mol).set(verbose=0)
    e = mf.kernel(dm0=guess_dm(mf, hf_ref.get_fock()))
    assert mf.converged and abs(e - ref.e_tot) < E_TOL


# ---- bad input -------------------------------------------------------------------------


def test_bad_fock_matrices_raise(hf_ref):
    mf, f = scf.RHF(hf_ref.mol), hf_ref.get_fock()
    n = f.shape[0]
    with pytest.raises(GuessError, match=rf"shape \({n - 1}, {n - 1}\).*{n} AOs"):
        guess_dm(mf, f[:-1, :-1])
    with pytest.raises(GuessError, match="shape"):
        guess_dm(mf, np.stack([f, f]))  # spin-resolved only for unrestricted SCF
    asym = f.copy()
    asym[0, 1] += 1e-3
    with pytest.raises(GuessError, match="not symmetric"):
        guess_dm(mf, asym)
    for bad in (np.nan, np.inf):
        g = f.copy()
        g[2, 3] = g[3, 2] = bad
        with pytest.raises(GuessError, match="2 non-finite"):
            guess_dm(mf, g)
    with pytest.raises(GuessError, match="complex"):
        guess_dm(mf, f.astype(complex))
    with pytest.raises(GuessError, match="GHF is not supported"):
        guess_dm(scf.GHF(hf_ref.mol), f)


def test_round_off_asymmetry_and_torch_input_accepted(hf_ref):
    mf, f = scf.RHF(hf_ref.mol), hf_ref.get_fock()
    ref = guess_dm(mf, f)
    f32 = torch.tensor(f, dtype=torch.float32)  # a float32 network output
    np.testing.assert_allclose(guess_dm(mf, f32), ref, atol=1e-5)
    # Round-off asymmetry is accepted and removed: F + A and F - A (A antisymmetric) give
    # the same density, that of (F + F^T) / 2.
    a = np.triu(symmetric_noise(f.shape[0], 1e-6, seed=3), 1)
    a = a - a.T
    d_plus, d_minus = guess_dm(mf, f + a), guess_dm(mf, f - a)
    np.testing.assert_allclose(d_plus, d_minus, atol=1e-13)
    np.testing.assert_allclose(d_plus, ref, atol=1e-4)


def test_wrong_basis_is_a_clear_error():
    model = OracleModel("sto-3g", ["H", "O"])
    mf = scf.RHF(water("def2-svp"))
    with pytest.raises(BasisError, match="def2-svp.*sto-3g"):
        predict_guess(mf, model)
    model = OracleModel("def2-svp", ["H", "C"])  # no oxygen
    with pytest.raises(BasisError, match="element O"):
        predict_guess(mf, model)
    assert model.calls == 0


def test_predict_guess_matches_guess_dm(hf_ref):
    model = OracleModel("def2-svp", ["H", "O"], xc="HF")
    mf = scf.RHF(hf_ref.mol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # HF model, HF SCF: no warning
        dm = predict_guess(mf, model)
    np.testing.assert_allclose(dm, guess_dm(mf, hf_ref.get_fock()), atol=1e-8)


# ---- functionals -----------------------------------------------------------------------


def test_functional_mismatch_warns_naming_both():
    mol = water("sto-3g")
    with pytest.warns(FunctionalMismatchWarning, match=r"'b3lyp'.*'pbe'"):
        check_functional(dft.RKS(mol, xc="pbe"), "b3lyp")
    with pytest.warns(FunctionalMismatchWarning, match=r"'pbe'.*'HF'"):
        check_functional(scf.RHF(mol), "pbe")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_functional(dft.RKS(mol, xc="PBE"), "pbe,pbe")
        check_functional(scf.UHF(water("sto-3g", 1, 1)), "HF")
        check_functional(dft.RKS(mol, xc="pbe"), None)  # unknown provenance: no check


def test_same_functional():
    assert same_functional("PBE", "gga_x_pbe,gga_c_pbe")
    assert same_functional("hf", "RHF")
    assert not same_functional("pbe", "pbe0")
    assert not same_functional("b3lyp", "hf")


def test_make_scf_types():
    assert type(make_scf(water("sto-3g"))) is scf.hf.RHF
    assert type(make_scf(water("sto-3g", 1, 1), "HF")) is scf.uhf.UHF
    assert type(make_scf(water("sto-3g"), "pbe")) is dft.rks.RKS
    mf = make_scf(water("sto-3g", 0, 2), "pbe", grid_level=1, conv_tol=1e-7)
    assert type(mf) is dft.uks.UKS and mf.grids.level == 1 and mf.conv_tol == 1e-7


def test_build_mole_checks():
    with pytest.raises(ValueError, match="charge 0 and spin 1 are inconsistent"):
        build_mole(WATER_Z, WATER_POS, "sto-3g", spin=1)
    with pytest.raises(ValueError, match=r"positions must have shape \(2, 3\) for 2 atoms"):
        build_mole([1, 1], WATER_POS, "sto-3g")
    mol = build_mole(WATER_Z, WATER_POS, "sto-3g")
    np.testing.assert_allclose(mol.atom_coords(unit="Angstrom"), WATER_POS, atol=1e-12)


# ---- CLI -------------------------------------------------------------------------------


def write_xyz(path, z, pos):
    sym = {1: "H", 6: "C", 7: "N", 8: "O"}
    atoms = [f"{sym[a]} {x:.8f} {y:.8f} {w:.8f}" for a, (x, y, w) in zip(z, pos)]
    lines = [str(len(z)), "test"] + atoms
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_guess(tmp_path, monkeypatch, capsys):
    from hamnet import cli
    from hamnet.commands import guess as guess_cmd

    xyz = write_xyz(tmp_path / "water.xyz", WATER_Z, WATER_POS)
    model = OracleModel("6-31g", ["H", "O"], xc="pbe")
    monkeypatch.setattr(guess_cmd, "_load_model", lambda path: model)
    assert cli.main(["guess", str(xyz), "--model", "fake.ckpt"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:4]}
    assert set(rows) == {"hamnet", "minao"} and "RKS pbe" in out
    assert int(rows["hamnet"][1]) <= 2 < int(rows["minao"][1])
    d_e = float(out.split("E(hamnet) - E(minao) = ")[1].split()[0])
    assert abs(d_e) < 1e-8
    # Open shell, charged, HF override: functional mismatch warning names both.
    with pytest.warns(FunctionalMismatchWarning, match=r"'pbe'.*'HF'"):
        rc = cli.main(
            ["guess", str(xyz), "--model", "f", "--xc", "HF", "--charge", "1", "--spin", "1"]
        )
    assert rc == 0 and "UHF HF" in capsys.readouterr().out


def test_cli_guess_errors(tmp_path, monkeypatch, capsys):
    from hamnet import cli
    from hamnet.commands import guess as guess_cmd

    xyz = write_xyz(tmp_path / "water.xyz", WATER_Z, WATER_POS)
    monkeypatch.setattr(guess_cmd, "_load_model", lambda path: OracleModel("sto-3g", ["H", "O"]))
    assert cli.main(["guess", str(xyz), "--model", "f", "--basis", "6-31g"]) == 2
    assert "differs from this layout's 'sto-3g'" in capsys.readouterr().err
    assert cli.main(["guess", str(tmp_path / "missing.xyz"), "--model", "f"]) == 2
    assert "missing.xyz" in capsys.readouterr().err
    assert cli.main(["guess", str(xyz), "--model", "f", "--spin", "1"]) == 2
    assert "inconsistent" in capsys.readouterr().err


def test_read_mole(tmp_path):
    xyz = write_xyz(tmp_path / "w.xyz", WATER_Z, WATER_POS)
    mol = read_mole(xyz, "sto-3g", charge=1, spin=1)
    assert mol.nelec == (5, 4)
    np.testing.assert_allclose(mol.atom_coords(unit="Angstrom"), WATER_POS, atol=1e-8)
    (tmp_path / "junk.xyz").write_text("not a molecule\n")
    with pytest.raises(ValueError, match="cannot read a molecule"):
        read_mole(tmp_path / "junk.xyz", "sto-3g")


# ---- benchmark script ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("scf_speedup")


def test_benchmark_oracle_and_resume(bench, tmp_path, monkeypatch, capsys):
    w = write_xyz(tmp_path / "water.xyz", WATER_Z, WATER_POS)
    nh3_pos = [[0, 0, 0.1], [0.94, 0, -0.27], [-0.47, 0.81, -0.27], [-0.47, -0.81, -0.27]]
    nh3 = write_xyz(tmp_path / "nh3.xyz", [7, 1, 1, 1], nh3_pos)
    out = tmp_path / "res.json"
    common = ["--basis", "sto-3g", "--xc", "HF", "--guesses", "1e", "atom", "--out", str(out)]
    assert bench.main(["--xyz", str(w), "--oracle"] + common) == 0
    res = json.loads(out.read_text())
    m = res["molecules"][str(w)]
    assert list(m["runs"]) == ["minao", "1e", "atom", "oracle"]
    ref = converged(build_mole(WATER_Z, WATER_POS, "sto-3g"))
    for run in m["runs"].values():
        assert run["converged"] and abs(run["e_tot"] - ref.e_tot) < 1e-7
    c = {g: r["cycles"] for g, r in m["runs"].items()}
    assert c["oracle"] <= 2
    assert m["achieved"]["1e"] == pytest.approx(c["oracle"] / c["1e"])
    assert m["optimal"]["minao"] == pytest.approx(1 / c["minao"])
    # the guard's statistic of the converged density, by hand (SCFs at 1e-9 and 1e-12 agree to 1e-4)
    shift = np.abs(ref.make_rdm1() - ref.get_init_guess(ref.mol, "minao")).max()
    assert m["converged_density_shift"] == pytest.approx(shift, abs=1e-4)
    assert m["energy_ok"] and res["summary"]["all_energy_ok"]
    assert "achieved = cycles(oracle)/cycles(baseline)" in capsys.readouterr().out
    # Resume: the finished molecule is not run again, the new one is added once.
    calls = []
    real = bench.benchmark_molecule
    monkeypatch.setattr(bench, "benchmark_molecule", lambda mol, *a, **k: calls.append(mol.natm)
                        or real(mol, *a, **k))
    assert bench.main(["--xyz", str(w), str(nh3), "--oracle"] + common) == 0
    res2 = json.loads(out.read_text())
    assert calls == [4] and list(res2["molecules"]) == [str(w), str(nh3)]
    assert res2["molecules"][str(w)] == m
    with pytest.raises(ValueError, match="other settings"):
        bench.main(["--xyz", str(w), "--oracle", "--conv-tol", "1e-8"] + common)
    # Merge: the water file and an NH3-only file give the two-molecule run's summary.
    only_nh3 = tmp_path / "nh3.json"
    assert bench.main(["--xyz", str(nh3), "--oracle", *common[:-1], str(only_nh3)]) == 0
    merged = tmp_path / "merged.json"
    first = tmp_path / "water_only.json"
    first.write_text(json.dumps({"settings": res["settings"], "molecules": {str(w): m}}))
    assert bench.main(["--merge", str(first), str(only_nh3), "--out", str(merged)]) == 0
    got = json.loads(merged.read_text())
    nh3_cycles = json.loads(only_nh3.read_text())["molecules"][str(nh3)]["runs"]["oracle"]["cycles"]
    assert got["summary"]["n_molecules"] == 2
    assert got["summary"]["cycles"]["oracle"] == pytest.approx((c["oracle"] + nh3_cycles) / 2)
    assert got["molecules"][str(w)] == m and (tmp_path / "merged.png").is_file()
    # other settings, or one molecule with two different results, are one-line errors
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"settings": {**res["settings"], "conv_tol": 1e-8}, "molecules": {}}))
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"settings": res["settings"], "molecules": {str(w): {**m, "converged": False}}}))
    capsys.readouterr()
    for files, message in (([first, other], "other settings than"), ([first, clash], "also in an earlier file"),
                           ([tmp_path / "none.json"], "not a results file")):
        with pytest.raises(SystemExit) as exc:
            bench.main(["--merge", *map(str, files), "--out", str(tmp_path / "x.json")])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err


def test_benchmark_with_model_object(bench, tmp_path):
    w = write_xyz(tmp_path / "water.xyz", WATER_Z, WATER_POS)
    model = OracleModel("sto-3g", ["H", "O"], xc="HF", sigma=1e-3)
    out = tmp_path / "model.json"
    argv = ["--xyz", str(w), "--model", "x", "--basis", "sto-3g", "--xc", "HF",
            "--guesses", "minao", "--out", str(out)]
    assert bench.main(argv, model=model) == 0
    m = json.loads(out.read_text())["molecules"][str(w)]
    assert set(m["runs"]) == {"minao", "hamnet"} and m["energy_ok"] and m["converged"]
    assert model.calls >= 2  # the warm-up and the timed run both predict


def test_benchmark_with_rotation_averaged_model(bench, tmp_path):
    """--average wraps the model in RotationAveraged: the SCF from its guess still reaches the
    minao energy, and the run and the settings name the grid."""
    import torch

    from hamnet.model import build_model

    w = write_xyz(tmp_path / "water.xyz", WATER_Z, WATER_POS)
    torch.manual_seed(0)
    model = build_model("sto-3g", ["H", "O"], backbone="pet", xc="HF", pet_dim=8, pet_heads=2, pet_ff=8,
                        pet_pair_hidden=8, num_layers=1)
    out = tmp_path / "avg.json"
    argv = ["--xyz", str(w), "--model", "x", "--average", "3", "--basis", "sto-3g", "--xc", "HF",
            "--guesses", "minao", "--out", str(out)]
    assert bench.main(argv, model=model) == 0
    res = json.loads(out.read_text())
    m = res["molecules"][str(w)]
    assert set(m["runs"]) == {"minao", "hamnet-avg3"} and m["energy_ok"] and m["converged"]
    assert res["settings"]["average"] == 3


def test_benchmark_on_data_store_test_split(bench, tmp_path):
    """Oracle on a tiny hamnet data store: the stored F of the test part, charge from nocc."""
    from hamnet.data import record_keys as RK
    from hamnet.data import write_dataset

    records = []
    for k, (charge, shift) in enumerate([(0, 0.0), (0, 0.05), (2, -0.03)]):  # a water dication
        pos = np.asarray(WATER_POS) + [[0, 0, 0], [0, shift, 0], [0, 0, shift]]
        mf = converged(build_mole(WATER_Z, pos, "sto-3g", charge=charge))
        records.append({RK.Z: np.asarray(WATER_Z), RK.POS: pos, RK.F: mf.get_fock(),
                        RK.ENERGY: mf.e_tot, RK.NOCC: mf.mol.nelectron // 2, RK.SOURCE_ID: f"w{k}"})
    meta = {"recipe": "test", "xc": "hf", "basis": "sto-3g",
            "splits": {"s": {"train": [0], "test": [1, 2]}}}
    store = write_dataset(tmp_path / "ds", records, meta)
    out = tmp_path / "data.json"
    argv = ["--data", str(store), "--split", "s", "--oracle", "--guesses", "minao", "huckel",
            "--out", str(out)]
    assert bench.main(argv) == 0
    mols = json.loads(out.read_text())["molecules"]
    assert list(mols) == ["1:w1", "2:w2"]
    assert mols["2:w2"]["charge"] == 2
    for key, rec in zip(mols, records[1:]):
        runs = mols[key]["runs"]
        assert runs["oracle"]["cycles"] <= 2
        assert abs(runs["oracle"]["e_tot"] - rec[RK.ENERGY]) < 1e-8
        assert abs(runs["huckel"]["e_tot"] - rec[RK.ENERGY]) < 1e-7


def test_benchmark_guess_quality_correlations(bench, tmp_path):
    """Per-molecule guess metrics and their Pearson/Spearman correlation with hamnet's cycles."""
    from scipy import stats

    w = write_xyz(tmp_path / "water.xyz", WATER_Z, WATER_POS)
    out = tmp_path / "q.json"
    argv = ["--xyz", str(w), "--oracle", "--basis", "sto-3g", "--xc", "HF", "--guesses", "minao", "--out", str(out)]
    assert bench.main(argv) == 0
    res = json.loads(out.read_text())
    g = res["molecules"][str(w)]["guess_metrics"]
    assert g["H_mae"] < 1e-8 and g["density_mae"] < 1e-6 and abs(g["guess_energy"]) < 1e-7
    assert res["summary"]["guess_quality"]["metrics"]["H_mae"]["pearson"] is None  # one molecule
    mols = {str(k): {"runs": {"hamnet": {"cycles": c}},
                     "guess_metrics": {m: v for m in bench.GUESS_METRICS}}
            for k, (c, v) in enumerate([(3, 0.1), (5, 0.3), (4, 0.25), (9, 0.9)])}
    q = bench.guess_quality(mols, "hamnet")
    r = q["metrics"]["guess_energy"]
    assert r["pearson"] == pytest.approx(stats.pearsonr([0.1, 0.3, 0.25, 0.9], [3, 5, 4, 9])[0])
    assert r["spearman"] == pytest.approx(1.0) and r["mean"] == pytest.approx(0.3875 * 1e3)
    assert "Spearman rho" in bench.format_guess_quality(q)


def test_guard_density_benchmark_reports_the_converged_shift(store, tmp_path, capsys, load_benchmark):
    """benchmarks/guard_density.py: max |P - P_minao| of the stored converged F, by hand."""
    from hamnet.data import open_dataset
    from hamnet.data import record_keys as RK
    from hamnet.scf import guess_dm, make_scf

    mod = load_benchmark("guard_density")
    out = tmp_path / "rows.json"
    assert mod.main(["--data", str(store), "--split", "tiny", "--part", "test", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    ds = open_dataset(store)
    assert [r["record"] for r in rows] == ds.split("tiny", "test")
    for r in rows:
        rec = ds[r["record"]]
        mol = build_mole(rec[RK.Z], rec[RK.POS], "sto-3g")
        mf = make_scf(mol, "HF")
        shift = np.abs(guess_dm(mf, rec[RK.F]) - mf.get_init_guess(mol, "minao")).max()
        assert r["converged"]["shift"] == pytest.approx(shift, abs=1e-10)
        e = scipy.linalg.eigh(rec[RK.F], mol.intor("int1e_ovlp"), eigvals_only=True)
        assert r["converged"]["gap"] == pytest.approx(e[5] - e[4], abs=1e-10)  # water: 5 occupied
    assert "kept by the guard 2 of 2" in capsys.readouterr().out
