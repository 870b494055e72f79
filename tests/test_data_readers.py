"""Readers of the public files: tiny files written in exactly the published schemas
from PySCF calculations (with the inverse transforms applied), then imported."""

import pickle
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


def _write_qh9_dynamic(path, calcs):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS data (id INTEGER NOT NULL, geo_id INTEGER NOT NULL, "
                "N INTEGER, Z BLOB, pos BLOB, ekin FLOAT, epot FLOAT, etot FLOAT, time FLOAT, "
                "Ham BLOB, converged INT)")
    rows = []
    for mol_id, name in [(7, "water"), (3, "ammonia")]:
        for geo, (z, p, f, _, e) in enumerate(calcs[name]):
            # QH9-dynamic: id is a numpy int64 (stored as an 8-byte blob), pos in Bohr
            con.execute(
                "INSERT INTO data (id, geo_id, N, Z, pos, ekin, epot, etot, time, Ham, converged)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (_blob([mol_id], "<i8"), geo, len(z), _blob(z, "<i4"),
                 _blob(p / nist.BOHR, "<f8"), 0.01, e, e + 0.01, 50.0 * geo, _blob(f, "<f8"), 1))
            rows.append((z, p, f, mol_id, geo))
    con.commit()
    con.close()
    return rows


def test_qh9_stable_sqlite(tmp_path, calcs):
    rows = _write_qh9_stable(tmp_path / "QH9Stable.db", calcs)
    assert detect_format(tmp_path / "QH9Stable.db") == "qh9-sqlite"
    path = import_dataset(tmp_path / "QH9Stable.db", tmp_path / "out", progress=False)
    with open_dataset(path) as ds:
        assert len(ds) == 3 and ds.metadata[K.META_XC] == "b3lyp"
        for rec, (z, p, f, _, _) in zip(ds, rows):
            assert np.array_equal(rec[K.Z], z)
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            assert rec[K.NOCC] == z.sum() // 2
        assert [r[K.SOURCE_ID] for r in ds] == ["QH9Stable/10", "QH9Stable/11", "QH9Stable/12"]
        assert ds.splits["random"] == S.random_split(3)
        assert ds.splits["size_ood"]["train"] == [0, 1, 2]


def test_qh9_dynamic_sqlite_bohr(tmp_path, calcs):
    rows = _write_qh9_dynamic(tmp_path / "QH9Dynamic_100k.db", calcs)
    path = import_dataset(tmp_path / "QH9Dynamic_100k.db", tmp_path / "out", progress=False)
    with open_dataset(path) as ds:
        assert len(ds) == 6
        for rec, (z, p, f, mol_id, geo) in zip(ds, rows):
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)  # Bohr -> Angstrom
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            assert rec[K.SOURCE_ID] == f"QH9Dynamic/{mol_id}/{geo}"
        groups = [7, 7, 7, 3, 3, 3]
        assert ds.splits["geometry"] == S.geometry_split(groups)
        assert ds.splits["mol"] == S.mol_split(groups)


def test_qh9_processed_lmdb(tmp_path, calcs):
    for kind in ("stable", "dynamic"):
        d = tmp_path / f"QH9{kind}.lmdb"
        env = lmdb.open(str(d), map_size=1 << 26)
        with env.begin(write=True) as txn:
            for ind, (z, p, f, _, _) in enumerate(calcs["ammonia"]):
                rec = {"id": 40 + ind, "num_nodes": len(z), "atoms": _blob(z, "<i4").tobytes(),
                       "pos": _blob(p if kind == "stable" else p / nist.BOHR, "<f8").tobytes(),
                       "Ham": _blob(f, "<f8").tobytes()}
                if kind == "dynamic":
                    rec.update(id=40, geo_id=ind)
                txn.put(ind.to_bytes(length=4, byteorder="big"), pickle.dumps(rec))
        env.close()
        assert detect_format(d) == "qh9-lmdb"
        path = import_dataset(d / "data.mdb", tmp_path / f"out-{kind}", progress=False)
        with open_dataset(path) as ds:
            assert len(ds) == 3
            for rec, (z, p, f, _, _) in zip(ds, calcs["ammonia"]):
                np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)
                np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            names = {"random", "size_ood"} if kind == "stable" else {"geometry", "mol"}
            assert set(ds.splits) == names


def _schnorb_basisdef(elements):
    bd = np.zeros((max(elements) + 1, 14, 5), dtype=int)
    for z in elements:
        lm = orca_basisdef(radial_ls_of("def2-svp", z))
        for i, (l, m) in enumerate(lm):
            bd[z, i] = (i, 0, l + 1, l, m)  # (idx, type, n, l, m); n only has to be > 0
    return bd.tolist()


def test_schnorb_ase_db(tmp_path, calcs):
    from ase import Atoms
    from ase.db import connect

    mean = -76.3
    db = connect(str(tmp_path / "schnorb_hamiltonian_water.db"))
    for z, p, f, s, e in calcs["water"]:
        lay = layout_of("def2-svp", z)
        db.write(Atoms(numbers=z, positions=p), data={
            "hamiltonian": pyscf_to_orca(f, lay), "overlap": pyscf_to_orca(s, lay),
            "energy": np.array([e - mean]), "forces": np.zeros((3, 3))})
    db.metadata = {"basisdef": _schnorb_basisdef([1, 8]), "mean_energy": mean}
    assert detect_format(tmp_path / "schnorb_hamiltonian_water.db") == "schnorb"
    src = tmp_path / "schnorb_hamiltonian_water.db"
    path = import_dataset(src, tmp_path / "out", progress=False)
    with open_dataset(path) as ds:
        for rec, (z, p, f, s, e) in zip(ds, calcs["water"]):
            np.testing.assert_allclose(rec[K.F], f, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.S], s, atol=1e-12, rtol=0)
            np.testing.assert_allclose(rec[K.POS], p, atol=1e-12, rtol=0)
            assert abs(rec[K.ENERGY] - e) < 1e-12
        assert ds.metadata[K.META_XC] == "pbe" and ds.splits["qhnet"] == S.md17_split(3, "water")
        assert "basisdef metadata absent" not in ds.metadata[K.META_DEVIATIONS]

    # a basisdef that does not describe ORCA's def2-SVP order is refused
    bad = _schnorb_basisdef([1, 8])
    bad[8][3][4], bad[8][4][4] = bad[8][4][4], bad[8][3][4]
    db.metadata = {"basisdef": bad}
    with pytest.raises(ReaderError, match="basisdef of element Z=8"):
        import_dataset(src, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    assert orca_m_order(1) == [0, 1, -1]


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
