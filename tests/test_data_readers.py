"""Readers of the public files: tiny files written in exactly the published schemas
from PySCF calculations (with the inverse transforms applied), then imported."""

import pickle
import re
import sqlite3

import lmdb
import numpy as np
import pytest
from pyscf import dft, gto
from pyscf.data import nist

from data_tools import splits as S
from data_tools.orca import orca_basisdef, orca_m_order, pyscf_to_orca
from data_tools.readers import ReaderError, detect_format, import_dataset
from data_tools.readers.common import layout_of, radial_ls_of
from hamnet.cli import main
from hamnet.data import keys as K, open_dataset
from hamnet.data.info import describe

GEOMS = {
    "water": ([8, 1, 1], [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]),
    "ammonia": ([7, 1, 1, 1], [[0.0, 0.0, 0.1], [0.0, 0.94, -0.27], [0.81, -0.47, -0.27],
                               [-0.81, -0.47, -0.27]]),
}


@pytest.fixture(scope="module")
def calcs():
    """PySCF B3LYP/def2-SVP of water and ammonia, plus 2 displaced frames of each."""
    out = {}
    rng = np.random.default_rng(5)
    for name, (z, pos) in GEOMS.items():
        frames = []
        for k in range(3):
            p = np.asarray(pos) + (0.02 * rng.normal(size=(len(z), 3)) if k else 0.0)
            mol = gto.M(atom=list(zip(z, p.tolist())), basis="def2-svp", verbose=0)
            mf = dft.RKS(mol, xc="b3lyp")
            mf.conv_tol = 1e-8
            mf.kernel()
            frames.append((np.array(z), p, mf.get_fock(), mol.intor("int1e_ovlp"), mf.e_tot))
        out[name] = frames
    return out


def _blob(a, dtype):
    return memoryview(np.ascontiguousarray(a, dtype=dtype))


def _write_qh9_stable(path, calcs):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS data (id INTEGER NOT NULL PRIMARY KEY, "
                "N INTEGER, Z BLOB, pos BLOB, Ham BLOB)")
    rows = [calcs["water"][0], calcs["ammonia"][0], calcs["water"][1]]
    for i, (z, p, f, _, _) in enumerate(rows):
        con.execute("INSERT INTO data (id, N, Z, pos, Ham) VALUES (?,?,?,?,?)",
                    (10 + i, len(z), _blob(z, "<i4"), _blob(p, "<f8"), _blob(f, "<f8")))
    con.commit()
    con.close()
    return rows


def _write_qh9_dynamic(path, calcs, mols=((7, "water"), (3, "ammonia")), frames=100,
                       unconverged=(), order=None):
    """QH9-dynamic SQLite: ``frames`` rows per molecule (the 3 calculations reused in turn,
    positions shifted per frame), rows listed in ``unconverged`` with converged = 0."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS data (id INTEGER NOT NULL, geo_id INTEGER NOT NULL, "
                "N INTEGER, Z BLOB, pos BLOB, ekin FLOAT, epot FLOAT, etot FLOAT, time FLOAT, "
                "Ham BLOB, converged INT)")
    rows = []
    for mol_id, name in mols:
        n = frames[mol_id] if isinstance(frames, dict) else frames
        for geo in range(n):
            z, p, f, _, e = calcs[name][geo % 3]
            rows.append((z, p + 1e-3 * geo, f, mol_id, geo, e))
    for r in (order or range(len(rows))):
        z, p, f, mol_id, geo, e = rows[r]
        # QH9-dynamic: id is a numpy int64 (stored as an 8-byte blob), pos in Bohr
        con.execute(
            "INSERT INTO data (id, geo_id, N, Z, pos, ekin, epot, etot, time, Ham, converged)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (_blob([mol_id], "<i8"), geo, len(z), _blob(z, "<i4"), _blob(p / nist.BOHR, "<f8"),
             0.01, e, e + 0.01, 50.0 * geo, _blob(f, "<f8"), int(r not in unconverged)))
    con.commit()
    con.close()
    return [rows[r] for r in (order or range(len(rows)))]


def test_qh9_stable_sqlite(tmp_path, calcs):
    rows = _write_qh9_stable(tmp_path / "QH9Stable.db", calcs)
    assert detect_format(tmp_path / "QH9Stable.db") == "qh9-sqlite"
    path = import_dataset(tmp_path / "QH9Stable.db", tmp_path / "out", progress=False)
    with open_dataset(path) as ds:
        assert len(ds) == 3
        # PySCF 2.2.1's "b3lyp" (VWN5) is today's "b3lyp5"
        m = ds.metadata
        assert (m[K.META_XC], m[K.META_XC_SOURCE], m[K.META_SOURCE_PYSCF_VERSION]) == (
            "b3lyp5", "b3lyp", "2.2.1")
        assert m[K.META_XC_DEFINITION].startswith("exact exchange (0.2, 0.2, 0.0)")
        for rec, (z, p, f, _, _) in zip(ds, rows):
            assert np.array_equal(rec[K.Z], z)
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            assert rec[K.NOCC] == z.sum() // 2
        assert [r[K.SOURCE_ID] for r in ds] == ["QH9Stable/10", "QH9Stable/11", "QH9Stable/12"]
        assert ds.splits["random"] == S.random_split(3)
        assert ds.splits["size_ood"]["train"] == [0, 1, 2]


def test_qh9_dynamic_sqlite_bohr(tmp_path, calcs):
    rows = _write_qh9_dynamic(tmp_path / "QH9Dynamic_100k.db", calcs, unconverged=(5, 150))
    path = import_dataset(tmp_path / "QH9Dynamic_100k.db", tmp_path / "out", progress=False)
    with open_dataset(path) as ds:
        assert len(ds) == 200
        for i, (rec, (z, p, f, mol_id, geo, _)) in enumerate(zip(ds, rows)):
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)  # Bohr -> Angstrom
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            assert rec[K.SOURCE_ID] == f"QH9Dynamic/{mol_id}/{geo}"
            assert rec[K.CONVERGED] is (i not in (5, 150))
        groups = [0] * 100 + [1] * 100  # QH9: row r is in trajectory r // 100
        assert ds.splits["geometry"] == S.geometry_split(groups)
        assert ds.splits["mol"] == S.mol_split(groups)
        assert [len(ds.splits["geometry"][p]) for p in K.SPLIT_PARTS] == [160, 20, 20]
        m = ds.metadata
        # QH9-dynamic-100k: PySCF 2.3.0, whose "b3lyp" is VWN-RPA, as today's
        assert (m[K.META_XC], m[K.META_SOURCE_PYSCF_VERSION]) == ("b3lyp", "2.3.0")
        assert m[K.META_UNCONVERGED] == [5, 150]
    text = describe(path)
    assert "unconverged SCF (kept, flagged converged=False): 2" in text
    assert "source functional: xc 'b3lyp' in PySCF 2.3.0" in text


def test_qh9_dynamic_versions_and_stated_xc(tmp_path, calcs, capsys):
    _write_qh9_dynamic(tmp_path / "QH9Dynamic_300k.db", calcs)
    path = import_dataset(tmp_path / "QH9Dynamic_300k.db", tmp_path / "d300", progress=False)
    with open_dataset(path) as ds:
        assert (ds.metadata[K.META_XC], ds.metadata[K.META_SOURCE_PYSCF_VERSION]) == (
            "b3lyp5", "2.2.1")
    # a stated functional that contradicts the file is refused
    with pytest.raises(ReaderError, match="contradicts"):
        import_dataset(tmp_path / "QH9Dynamic_300k.db", tmp_path / "x", progress=False, xc="b3lyp")
    # a file whose version neither the name nor the trajectory count tells is refused ...
    (tmp_path / "QH9Dynamic_300k.db").rename(tmp_path / "frames.db")
    with pytest.raises(ReaderError, match=r"--xc b3lyp5 \(300k\) or --xc b3lyp \(100k\)"):
        import_dataset(tmp_path / "frames.db", tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    # ... unless it is stated (CLI option --xc)
    out = tmp_path / "stated"
    assert main(["data", "import", str(tmp_path / "frames.db"), "--out", str(out), "--xc",
                 "B3LYP5", "--quiet"]) == 0
    assert "source functional: xc 'b3lyp' in PySCF unknown" in capsys.readouterr().out
    with open_dataset(out) as ds:
        assert ds.metadata[K.META_XC] == "b3lyp5"
    assert main(["data", "import", str(tmp_path / "frames.db"), "--out", str(tmp_path / "y"),
                 "--xc", "pbe"]) == 2
    assert "choose one of b3lyp5, b3lyp" in capsys.readouterr().err
    _write_qh9_stable(tmp_path / "QH9Stable.db", calcs)
    with pytest.raises(ReaderError, match="is QH9-stable"):
        import_dataset(tmp_path / "QH9Stable.db", tmp_path / "x", progress=False, xc="b3lyp")


def test_qh9_functional_is_used_downstream(tmp_path, calcs):
    """A model trained on QH9-stable runs B3LYP-VWN5 and refuses VWN-RPA data."""
    from hamnet.scf import make_scf, same_functional
    from hamnet.train.data import DataError, check_compatible

    _write_qh9_stable(tmp_path / "QH9Stable.db", calcs)
    with open_dataset(import_dataset(tmp_path / "QH9Stable.db", tmp_path / "s",
                                     progress=False)) as ds:
        xc = ds.metadata[K.META_XC]
        mol = gto.M(atom="O 0 0 0; H 0 0.76 0.59; H 0 -0.76 0.59", basis="def2-svp", verbose=0)
        mf = make_scf(mol, xc)
        assert same_functional(mf.xc, "b3lyp5") and not same_functional(mf.xc, "b3lyp")
        with pytest.raises(DataError, match="labeled with 'b3lyp5'"):
            check_compatible("def2-svp", "b3lyp", ds=ds)


@pytest.mark.parametrize("case, message", [
    ("split", "not one contiguous block"),
    ("short", "trajectories of different lengths"),
    ("old", "first QH9Dynamic.db"),
    ("tiny", "every trajectory has 3 frames"),
])
def test_qh9_dynamic_layout_is_checked(tmp_path, calcs, case, message):
    src = tmp_path / "QH9Dynamic_300k.db"
    if case == "split":  # molecule 7's frames in two blocks
        order = list(range(50)) + list(range(100, 200)) + list(range(50, 100))
        _write_qh9_dynamic(src, calcs, order=order)
    elif case == "short":  # one trajectory lost a frame
        _write_qh9_dynamic(src, calcs, frames={7: 100, 3: 99})
    elif case == "old":  # 2023 file: trajectories of 60 frames (50/5/5 split)
        _write_qh9_dynamic(src, calcs, frames=60)
    else:
        _write_qh9_dynamic(src, calcs, frames=3)
    with pytest.raises(ReaderError, match=message) as err:
        import_dataset(src, tmp_path / "out", progress=False)
    if case == "old":
        assert "QH9Dynamic_300k.db and QH9Dynamic_100k.db" in str(err.value)
    assert not (tmp_path / "out").exists()


def _write_lmdb(d, records, keys):
    env = lmdb.open(str(d), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, rec in zip(keys, records):
            txn.put(int(key).to_bytes(length=4, byteorder="big"), pickle.dumps(rec))
    env.close()


def _lmdb_record(z, p, f, qm9_id, geo=None):
    rec = {"id": qm9_id, "num_nodes": len(z), "atoms": _blob(z, "<i4").tobytes(),
           "pos": _blob(p if geo is None else p / nist.BOHR, "<f8").tobytes(),
           "Ham": _blob(f, "<f8").tobytes()}
    if geo is not None:
        rec["geo_id"] = geo
    return rec


def test_qh9_processed_lmdb(tmp_path, calcs):
    # stable: QH9 keys each record by its QM9 id (QH9Stable.process: id.to_bytes(4, 'big'))
    ids = [40, 57, 91]
    d = tmp_path / "QH9Stable" / "processed" / "QH9Stable.lmdb"
    d.parent.mkdir(parents=True)
    _write_lmdb(d, [_lmdb_record(z, p, f, i) for (z, p, f, _, _), i in zip(calcs["ammonia"], ids)],
                ids)
    assert detect_format(d) == "qh9-lmdb"
    with open_dataset(import_dataset(d / "data.mdb", tmp_path / "out-s", progress=False)) as ds:
        assert [r[K.SOURCE_ID] for r in ds] == [f"QH9Stable/{i}" for i in ids]
        for rec, (z, p, f, _, _) in zip(ds, calcs["ammonia"]):
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
        assert set(ds.splits) == {"random", "size_ood"} and ds.metadata[K.META_XC] == "b3lyp5"
    # dynamic: key = row index (QH9Dynamic.process: ind.to_bytes(4, 'big')), 100 frames each
    d = tmp_path / "QH9Dynamic_300k" / "processed" / "QH9Dynamic.lmdb"
    d.parent.mkdir(parents=True)
    recs = [_lmdb_record(*calcs[name][g % 3][:3], mol, g)
            for mol, name in [(40, "ammonia"), (12, "water")] for g in range(100)]
    _write_lmdb(d, recs, range(200))
    with open_dataset(import_dataset(d, tmp_path / "out-d", progress=False)) as ds:
        assert len(ds) == 200 and set(ds.splits) == {"geometry", "mol"}
        assert ds.splits["geometry"] == S.geometry_split([0] * 100 + [1] * 100)
        np.testing.assert_allclose(ds[101][K.POS], calcs["water"][1][1], atol=1e-12, rtol=0)
        m = ds.metadata
        assert m[K.META_XC] == "b3lyp5" and m[K.META_UNCONVERGED] is None  # path says 300k
        assert "does not carry the 'converged' column" in m[K.META_DEVIATIONS]
    assert "unconverged SCF (kept, flagged converged=False): not recorded" in describe(
        tmp_path / "out-d")
    # keys that are not QH9's layout are refused
    bad = tmp_path / "bad.lmdb"
    _write_lmdb(bad, [_lmdb_record(*calcs["water"][0][:3], 40)], [0])
    with pytest.raises(ReaderError, match="not the 4-byte big-endian QM9 id of its record 40"):
        import_dataset(bad, tmp_path / "out-b", progress=False)


def _schnorb_basisdef(elements):
    bd = np.zeros((max(elements) + 1, 14, 5), dtype=int)
    for z in elements:
        lm = orca_basisdef(radial_ls_of("def2-svp", z))
        for i, (l, m) in enumerate(lm):
            bd[z, i] = (i, 0, l + 1, l, m)  # (idx, type, n, l, m); n only has to be > 0
    return bd.tolist()


def _write_schnorb(path, frames, metadata, shift=0.0):
    """SchNOrb ASE db of ``frames`` (Z, pos, F, S, E; PySCF order): matrices converted to
    ORCA order by hamnet, energies stored as ``E - shift``."""
    from ase import Atoms
    from ase.db import connect

    db = connect(str(path))
    for z, p, f, s, e in frames:
        lay = layout_of("def2-svp", z)
        db.write(Atoms(numbers=z, positions=p), data={
            "hamiltonian": pyscf_to_orca(f, lay), "overlap": pyscf_to_orca(s, lay),
            "energy": np.array([e - shift]), "forces": np.zeros((len(z), 3))})
    db.metadata = metadata
    return db


def test_schnorb_ase_db(tmp_path, calcs):
    # SchNOrb's parser subtracts energy_offset, its post-processing then the mean: both
    # are in the metadata and both are added back
    mean, offset = 0.0123, -76.3
    src = tmp_path / "schnorb_hamiltonian_water.db"
    db = _write_schnorb(src, calcs["water"], {"basisdef": _schnorb_basisdef([1, 8]),
                        "mean_energy": mean, "energy_offset": offset}, shift=mean + offset)
    assert detect_format(src) == "schnorb"
    path = import_dataset(src, tmp_path / "out", progress=False)
    with open_dataset(path) as ds:
        for rec, (z, p, f, s, e) in zip(ds, calcs["water"]):
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.S], s, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)
            assert abs(rec[K.ENERGY] - e) < 1e-10
        assert ds.metadata[K.META_XC] == "pbe" and ds.splits["qhnet"] == S.md17_split(3, "water")
        assert "basisdef metadata absent" not in ds.metadata[K.META_DEVIATIONS]
        assert "energy_offset -76.3 + mean_energy 0.0123" in ds.metadata[K.META_PROVENANCE]

    # a basisdef that does not describe ORCA's def2-SVP order is refused
    bad = _schnorb_basisdef([1, 8])
    bad[8][3][4], bad[8][4][4] = bad[8][4][4], bad[8][3][4]
    db.metadata = {"basisdef": bad, "mean_energy": mean, "energy_offset": offset}
    with pytest.raises(ReaderError, match="basisdef of element Z=8"):
        import_dataset(src, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    assert orca_m_order(1) == [0, 1, -1]


@pytest.mark.parametrize("metadata, shift", [
    ({"mean_energy": -76.3}, -76.3 - 76.3),  # offset subtracted twice
    ({}, -76.3),  # energies shifted, but the metadata does not say by how much
    ({"energy_offset": -70.0}, -76.3),  # a wrong offset
])
def test_schnorb_shifted_energies_refused(tmp_path, calcs, metadata, shift):
    src = tmp_path / "schnorb_hamiltonian_water.db"
    _write_schnorb(src, calcs["water"], metadata, shift=shift)
    with pytest.raises(ReaderError, match=r"implausible for these 3 atoms .*\[-78\.3, -74\.0\]"):
        import_dataset(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_energy_plausibility_window():
    from pyscf import scf

    from data_tools.readers.common import check_energy, free_atom_energy, plausible_energy_window

    # the free-atom estimate against the exact nonrelativistic energies of H, C, O
    for z, exact in [(1, -0.5), (6, -37.845), (8, -75.067)]:
        assert abs(free_atom_energy(z) - exact) < 0.25
    low, high, _ = plausible_energy_window([8, 1, 1])  # water must be near -76 Ha
    assert -78.5 < low < -78.0 and -74.2 < high < -73.8
    # real energies at HF and DFT pass, also for an element of the third period
    for atom, method in [("O 0 0 0; H 0 0.76 0.59; H 0 -0.76 0.59", scf.RHF),
                         ("S 0 0 0; H 0 0.96 0.93; H 0 -0.96 0.93", scf.RHF),
                         ("C 0 0 0; H .63 .63 .63; H -.63 -.63 .63; H -.63 .63 -.63; "
                          "H .63 -.63 -.63", lambda m: dft.RKS(m, xc="pbe"))]:
        mol = gto.M(atom=atom, basis="def2-svp", verbose=0)
        e = method(mol).kernel()
        check_energy(e, mol.atom_charges(), "pyscf")
        with pytest.raises(ReaderError, match="shifted by a constant"):
            check_energy(e - e, mol.atom_charges(), "shifted")
    assert plausible_energy_window([53, 1]) is None  # iodine: ECP in def2, not checked


ETHANOL = ([6, 6, 8, 1, 1, 1, 1, 1, 1],
           [[-0.0, 0.56, 0.0], [-1.25, -0.29, 0.0], [1.15, -0.24, 0.0], [0.05, 1.21, 0.88],
            [0.05, 1.21, -0.88], [-2.16, 0.32, 0.0], [-1.24, -0.93, 0.89], [-1.24, -0.93, -0.89],
            [1.91, 0.35, 0.0]])


@pytest.fixture(scope="module")
def ethanol_frames():
    z, p = np.array(ETHANOL[0]), np.array(ETHANOL[1])
    mol = gto.M(atom=list(zip(z.tolist(), p.tolist())), basis="def2-svp", verbose=0)
    s = mol.intor("int1e_ovlp")
    f = mol.intor("int1e_kin") + mol.intor("int1e_nuc")  # any symmetric matrix will do
    return [(z, p, f, s, -153.8), (z, p + 0.01, f, s, -153.79)]


@pytest.mark.parametrize("name, metadata, xc, expect", [
    ("schnorb_hamiltonian_ethanol_hf.db", {}, None, "hf"),
    ("schnorb_hamiltonian_ethanol_dft.db", {}, None, "pbe"),
    ("ethanol.db", {"method": "Hartree-Fock"}, None, "hf"),
    ("ethanol.db", {}, "hf", "hf"),
    ("ethanol.db", {}, None, "cannot tell its level of theory: SchNOrb published ethanol"),
    ("schnorb_hamiltonian_ethanol_hf.db", {}, "pbe", "says hf, so --xc pbe contradicts it"),
    ("schnorb_hamiltonian_ethanol_hf.db", {"xc": "PBE"}, None, "contradictory level of theory"),
])
def test_schnorb_level_of_theory(tmp_path, ethanol_frames, name, metadata, xc, expect):
    from hamnet.scf import make_scf

    src = tmp_path / name
    _write_schnorb(src, ethanol_frames, metadata)
    if expect not in ("hf", "pbe"):
        with pytest.raises(ReaderError, match=re.escape(expect)):
            import_dataset(src, tmp_path / "out", progress=False, xc=xc)
        return
    with open_dataset(import_dataset(src, tmp_path / "out", progress=False, xc=xc)) as ds:
        m = ds.metadata
        assert m[K.META_XC] == expect and f"ORCA {expect.upper()}/def2-svp" in m[K.META_PROVENANCE]
        assert ds.splits["qhnet"] == S.md17_split(2, "ethanol")
        # an SCF started from a model trained on this set runs the same method
        mf = make_scf(gto.M(atom="He 0 0 0", basis="def2-svp", verbose=0), m[K.META_XC])
        assert hasattr(mf, "xc") == (expect == "pbe")


def test_schnorb_orca_fixture_built_by_hand(tmp_path, calcs):
    """ORCA-order matrices written without hamnet's conversion: ORCA's documented order of
    the real spherical functions within a shell is m = 0, +1, -1, +2, -2 (p: pz, px, py;
    d: dz2, dxz, dyz, dx2-y2, dxy), no sign changes for l <= 2; PySCF's is px, py, pz and
    m = -2..2 for d. Shells in def2-SVP order: O 3s 2p 1d, H 2s 1p."""
    orca_from_pyscf = {"s": [0], "p": [2, 0, 1], "d": [2, 3, 1, 4, 0]}  # ORCA slot <- PySCF
    shells = {8: "sssppd", 1: "ssp"}
    width = {"s": 1, "p": 3, "d": 5}
    z, p, f, s, e = calcs["water"][0]
    mol = gto.M(atom=list(zip(z.tolist(), p.tolist())), basis="def2-svp", verbose=0)
    # PySCF's own shell list agrees with the hand-written one
    assert "".join("spd"[mol.bas_angular(b)] for b in range(mol.nbas)) == "".join(
        shells[int(a)] for a in z)
    q, start = [], 0
    for atom in z:
        for shell in shells[int(atom)]:
            q += [start + k for k in orca_from_pyscf[shell]]
            start += width[shell]
    assert sorted(q) == list(range(mol.nao))
    q = np.array(q)
    f_orca, s_orca = f[np.ix_(q, q)], s[np.ix_(q, q)]  # ORCA slot a holds PySCF AO q[a]
    from ase import Atoms
    from ase.db import connect

    src = tmp_path / "schnorb_hamiltonian_water.db"
    db = connect(str(src))
    db.write(Atoms(numbers=z, positions=p), data={
        "hamiltonian": f_orca.astype(np.float32), "overlap": s_orca.astype(np.float32),
        "energy": np.array([e])})
    db.metadata = {"basisdef": _schnorb_basisdef([1, 8])}
    with open_dataset(import_dataset(src, tmp_path / "out", progress=False)) as ds:
        rec = ds[0]
    # against PySCF's own matrices (float32 precision of the published files)
    np.testing.assert_allclose(rec[K.S], mol.intor("int1e_ovlp"), atol=1e-6, rtol=0)
    np.testing.assert_allclose(rec[K.F], f, atol=5e-6, rtol=0)


def test_unknown_schemas(tmp_path, calcs, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE data (a INTEGER, b BLOB)")
    con.commit()
    con.close()
    from ase import Atoms
    from ase.db import connect

    connect(str(tmp_path / "ase.db")).write(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))
    for name, msg in [("notes.txt", "unknown format"), ("other.db", "unknown schema"),
                      ("ase.db", "no 'hamiltonian'"), ("missing.db", "does not exist")]:
        with pytest.raises(ReaderError, match=msg):
            import_dataset(tmp_path / name, tmp_path / "out", progress=False)
        assert main(["data", "import", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
        assert msg in capsys.readouterr().err
    # a QH9 file whose Ham does not fit def2-SVP is refused, nothing written
    con = sqlite3.connect(tmp_path / "QH9Stable.db")
    con.execute("CREATE TABLE data (id INTEGER PRIMARY KEY, N INTEGER, Z BLOB, pos BLOB, Ham BLOB)")
    row = (0, 3, _blob([8, 1, 1], "<i4"), _blob(np.zeros((3, 3)), "<f8"), _blob(np.eye(20), "<f8"))
    con.execute("INSERT INTO data VALUES (?,?,?,?,?)", row)
    con.commit()
    con.close()
    with pytest.raises(ReaderError, match="24 AOs"):
        import_dataset(tmp_path / "QH9Stable.db", tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "QH9Stable.db", "ase.db", "notes.txt", "other.db"]


def test_qh9_dynamic_version_from_trajectory_count():
    from pathlib import Path

    from data_tools.readers.qh9 import dynamic_source

    ids_100k = [1000 + r // 100 for r in range(999 * 100)]
    ids_300k = [1000 + r // 100 for r in range(2998 * 100)]
    src = dynamic_source(Path("frames.db"), ids_300k, None)  # published count of 300k
    assert (src.name, src.xc, src.pyscf) == ("QH9-dynamic-300k", "b3lyp5", "2.2.1")
    assert dynamic_source(Path("frames.db"), ids_100k, None).xc == "b3lyp"
    assert src.groups[-1] == 2997 and src.groups[100] == 1
    # the path says 300k, the count says 100k: refused unless the functional is stated
    with pytest.raises(ReaderError, match="path says QH9-dynamic-300k but it has the 999"):
        dynamic_source(Path("QH9Dynamic_300k.db"), ids_100k, None)
    assert dynamic_source(Path("QH9Dynamic_300k.db"), ids_100k, "b3lyp").xc == "b3lyp"
    # the nearest path component decides: QH9's own folder layout
    lmdb = Path("QH9Dynamic_100k/processed/QH9Dynamic.lmdb")
    assert dynamic_source(lmdb, ids_300k[:200], None).name == "QH9-dynamic-100k"
