"""`hamnet data make`: labels against fresh PySCF, resume after interruption, workers,
failed SCFs, recipes, and bad input."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.linalg
from pyscf import dft, gto

from data_tools.label import SCFSettings
from data_tools.make import make_dataset
from data_tools.recipes import QH9_DYNAMIC, QH9_STABLE, RECIPES, RecipeError
from hamnet.cli import main
from hamnet.data import IncompleteDatasetError, keys as K, open_dataset
from hamnet.data.store import FAIL_PREFIX, PLAN_PREFIX, REC_PREFIX, Store
from hamnet.testing import drop_records

N_WATER = 5


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    out = tmp_path_factory.mktemp("make") / "water"
    report = make_dataset("md17-water", out, N_WATER, progress=False)
    return out, report


def _records(path):
    with open_dataset(path) as ds:
        return list(ds), ds.metadata


def test_fock_equals_fresh_pyscf(water):
    """Acceptance: stored F = fresh PySCF PBE/def2-SVP at the stored geometry, 1e-6 Ha."""
    path, report = water
    recs, meta = _records(path)
    assert report.stored == N_WATER and report.failed == 0 and len(recs) == N_WATER
    assert (meta[K.META_XC], meta[K.META_BASIS], meta[K.META_GRID_LEVEL]) == ("pbe", "def2-svp", 3)
    for rec in recs[:3]:
        mol = gto.M(atom=list(zip(rec[K.Z].tolist(), rec[K.POS].tolist())), unit="Angstrom",
                    basis="def2-svp", verbose=0)
        mf = dft.RKS(mol, xc="pbe")
        mf.grids.level = 3
        mf.conv_tol, mf.conv_tol_grad = 1e-12, 1e-9
        mf.init_guess = "1e"  # a different start than the labeling run (minao)
        mf.kernel()
        assert mf.converged
        assert np.abs(rec[K.F] - mf.get_fock()).max() < 1e-6
        np.testing.assert_allclose(rec[K.S], mol.intor("int1e_ovlp"), atol=1e-14)
        assert abs(rec[K.ENERGY] - mf.e_tot) < 1e-8
        # invariants: F C = S C e reproduces mo_energy; occupied count; trace(D S) = N
        e, c = scipy.linalg.eigh(rec[K.F], rec[K.S])
        np.testing.assert_allclose(rec[K.MO_ENERGY], e, atol=1e-10)
        occ = c[:, : rec[K.NOCC]]
        assert rec[K.NOCC] == 5
        assert abs(np.trace(2 * occ @ occ.T @ rec[K.S]) - 10) < 1e-10


def test_geometries_are_md_frames(water):
    recs, meta = _records(water[0])
    pos = np.stack([r[K.POS] for r in recs])
    assert [r[K.SOURCE_ID] for r in recs] == [f"md17-water/frame/{i:06d}" for i in range(N_WATER)]
    oh = np.linalg.norm(pos[:, 1:] - pos[:, :1], axis=-1)
    assert 0.85 < oh.min() and oh.max() < 1.15  # bonded, thermally distorted water
    assert np.abs(np.diff(pos, axis=0)).max() > 0.01  # distinct frames
    sp = meta[K.META_SPLITS]["qhnet"]
    assert sorted(sp["train"] + sp["val"] + sp["test"]) == list(range(N_WATER))
    assert (len(sp["train"]), len(sp["val"])) == (1, 1)


def test_info(water, capsys):
    assert main(["data", "info", str(water[0])]) == 0
    out = capsys.readouterr().out
    for text in ("md17-water", "pbe/def2-svp", "SchNOrb", "GFN2-xTB", f"records: {N_WATER}",
                 "split qhnet: train 1, val 1, test 3", "pyscf 2."):
        assert text in out


def test_resume_after_lost_records(water, tmp_path):
    """Records never written (an interruption) are labeled on rerun; none duplicated."""
    import shutil

    path = tmp_path / "w"
    shutil.copytree(water[0], path)
    before, _ = _records(path)
    drop_records(path, [1, 3])
    with pytest.raises(IncompleteDatasetError):
        open_dataset(path)
    report = make_dataset("md17-water", path, N_WATER, progress=False)
    assert report.labeled_now == 2 and report.stored == N_WATER
    after, _ = _records(path)
    assert [r[K.SOURCE_ID] for r in after] == [r[K.SOURCE_ID] for r in before]
    for i in (0, 2, 4):  # untouched records are the same bytes
        assert np.array_equal(after[i][K.F], before[i][K.F])
    for i in (1, 3):  # relabeled ones agree with the first labeling
        assert np.abs(after[i][K.F] - before[i][K.F]).max() < 1e-8


def _start_make(path, n):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "hamnet", "data", "make", "md17-water", "--out", str(path),
         "--n", str(n), "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        # a test run started in the background (`cmd &` in a script) inherits SIGINT ignored,
        # and Python then never raises KeyboardInterrupt: give the make the default Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_records(proc, log, count):
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and log.read_text().count("converged") >= count:
            return
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError("make produced no records in 120 s")


def _stored(path):
    store = Store(path)
    try:
        return store.slots(REC_PREFIX)
    finally:
        store.close()


def test_ctrl_c_and_kill_9_then_resume(tmp_path):
    path, n = tmp_path / "interrupted", 14  # enough work left after 2 records that the signal lands mid-run under load
    log = path / "make.log"
    proc = _start_make(path, n)
    _wait_for_records(proc, log, 2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    assert proc.wait(60) == 130
    assert "rerun the same command" in proc.stderr.read().decode()
    first = _stored(path)
    assert 2 <= len(first) < n
    proc = _start_make(path, n)  # resumes, then dies without any cleanup
    _wait_for_records(proc, log, len(first) + 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    second = _stored(path)
    assert set(first) < set(second) and len(second) < n
    report = make_dataset("md17-water", path, n, progress=False)
    assert report.labeled_now == n - len(second)
    recs, _ = _records(path)
    assert [r[K.SOURCE_ID] for r in recs] == [f"md17-water/frame/{i:06d}" for i in range(n)]
    text = log.read_text()
    assert f"{len(first)} already done" in text and f"{len(second)} already done" in text
    assert text.count("converged") >= n


def test_sigterm_stops_the_workers_too(tmp_path):
    """`kill PID` of a make with worker processes leaves no orphan labeling on."""
    psutil = pytest.importorskip("psutil", reason="psutil comes with the data extra (dask)")
    path, n = tmp_path / "term", 12
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hamnet", "data", "make", "md17-water", "--out", str(path),
         "--n", str(n), "--workers", "2", "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for_records(proc, path / "make.log", 1)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the make runs worker processes"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) != 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"orphaned workers {alive}"
    assert 1 <= len(_stored(path)) < n  # what was finished is kept, for a resume


def test_workers_match_inline(water, tmp_path):
    report = make_dataset("md17-water", tmp_path / "par", 3, workers=2, progress=False)
    assert report.stored == 3
    par, _ = _records(tmp_path / "par")
    ref, _ = _records(water[0])
    for a, b in zip(par, ref):  # same seed: same geometries, same labels
        assert np.array_equal(a[K.POS], b[K.POS])
        assert np.abs(a[K.F] - b[K.F]).max() < 1e-8


def test_failed_scf_is_counted_not_stored(tmp_path):
    recipe = dataclasses.replace(
        RECIPES["md17-water"], settings=SCFSettings(xc="pbe", basis="def2-svp", max_cycle=2))
    report = make_dataset(recipe, tmp_path / "fail", 2, progress=False)
    assert (report.stored, report.failed) == (0, 2)
    assert "not converged" in report.failures[0] and "2 failed SCF" in str(report)
    with open_dataset(tmp_path / "fail") as ds:
        assert len(ds) == 0 and ds.metadata[K.META_FAILED] == 2
    store = Store(tmp_path / "fail")
    assert len(store.slots(FAIL_PREFIX)) == 2 and store.slots(PLAN_PREFIX) == [0, 1]
    store.close()
    # a rerun does not retry them (they are results, just not data)
    assert make_dataset(recipe, tmp_path / "fail", 2, progress=False).labeled_now == 0


def test_qh9_dynamic_small(tmp_path):
    recipe = dataclasses.replace(QH9_DYNAMIC, smiles=("O", "N"), frames_per_molecule=3)
    report = make_dataset(recipe, tmp_path / "dyn", 5, progress=False)
    recs, meta = _records(tmp_path / "dyn")
    assert report.stored == 5 and meta[K.META_XC] == "b3lyp5"
    assert [r[K.SOURCE_ID] for r in recs] == [
        "smiles/00000/O/frame/000", "smiles/00000/O/frame/001", "smiles/00000/O/frame/002",
        "smiles/00001/N/frame/000", "smiles/00001/N/frame/001"]
    geo = meta[K.META_SPLITS]["geometry"]
    assert sorted(sum(geo.values(), [])) == list(range(5))
    mol = meta[K.META_SPLITS]["mol"]  # 2 molecules: int(0.8*2)=1 train, 0 val, 1 test
    assert sorted(mol["train"] + mol["test"]) == list(range(5)) and mol["val"] == []
    assert {len(mol["train"]), len(mol["test"])} == {2, 3}


def test_qh9_stable_takes_qm9_molecules_and_geometries():
    """The qh9-stable recipe labels QM9's own molecules at QM9's geometries."""
    from data_tools import qm9
    from data_tools.recipes import geometries

    table = qm9.qm9_table()
    assert len(table) == 130_831 == qm9.QM9_SIZE
    # QM9 molecule 3 is water; its QM9 geometry (Angstrom) as printed in dsgdb9nsd_000003.xyz
    water = geometries(dataclasses.replace(QH9_STABLE, qm9_ids=(3,)), 1)[0]
    assert water.source_id == "dsgdb9nsd_000003" and water.group == 2
    np.testing.assert_array_equal(water.Z, [8, 1, 1])
    np.testing.assert_allclose(water.pos[0], [-0.0343604951, 0.9775395708, 0.0076015923])
    geoms = geometries(QH9_STABLE, 4)
    assert len({g.source_id for g in geoms}) == 4
    for g in geoms:
        assert set(g.Z.tolist()) <= {1, 6, 7, 8, 9} and (g.Z > 1).sum() <= 9
        assert g.source_id == qm9.source_id(table.qm9_id[g.group])
        assert len(g.Z) == table.n_atoms[g.group]
    again = geometries(QH9_STABLE, 4)
    assert all(np.array_equal(a.pos, b.pos) for a, b in zip(geoms, again))
    with pytest.raises(RecipeError, match="at most"):
        make_dataset("qh9-stable", "/nonexistent/never", QH9_STABLE.max_structures() + 1)
    with pytest.raises(RecipeError, match="not in QM9"):
        geometries(dataclasses.replace(QH9_STABLE, qm9_ids=(1, 4, 999999)), 3)


def test_priority_order_is_stratified_and_prefix_stable():
    from data_tools import qm9

    heavy = qm9.qm9_table().n_heavy
    order = qm9.priority_order(heavy, seed=9)
    assert sorted(order.tolist()) == list(range(len(heavy)))  # a permutation
    assert int((heavy <= 5).sum()) == 175
    strata = np.maximum(heavy[order[:80]], 5).tolist()
    assert strata == [5, 6, 5, 7, 5, 8, 5, 9] * 10
    # once the small molecules are exhausted (after 175 rounds), 6-9 continue in turn
    assert (heavy[order[175 * 2 : 175 * 2 + 8]] > 5).all()
    assert np.array_equal(order, qm9.priority_order(heavy, seed=9))
    assert not np.array_equal(order, qm9.priority_order(heavy, seed=10))


def test_qh9_random_split_is_qh9s_restricted():
    """Split membership of a labeled subset equals QH9's split of all 130,831 molecules."""
    from data_tools import splits as S
    from data_tools.recipes import splits

    rows = [0, 2, 17, 5000, 130_830, 77_777]
    mine = splits(QH9_STABLE, [5] * len(rows), rows)["random"]
    # QH9: RandomState(43).permutation(130831); int(0.8 n) train, int(0.1 n) val, rest test
    perm = np.random.RandomState(43).permutation(130_831)
    n_tr, n_va = int(0.8 * 130_831), int(0.1 * 130_831)
    part = {int(r): "train" for r in perm[:n_tr]}
    part.update({int(r): "val" for r in perm[n_tr : n_tr + n_va]})
    part.update({int(r): "test" for r in perm[n_tr + n_va :]})
    for i, r in enumerate(rows):
        assert i in mine[part[r]]
    assert sorted(sum(mine.values(), [])) == list(range(len(rows)))
    assert S.restrict({"train": [3], "val": [], "test": [1]}, [1, 2, 3]) == {
        "train": [2], "val": [], "test": [0]}


def test_qm9_store_grows_and_ids(tmp_path, capsys):
    """A larger --n grows a QM9 store, keeping its records; --ids labels chosen molecules."""
    fast = SCFSettings(xc="hf", basis="sto-3g", conv_tol=1e-9)
    recipe = dataclasses.replace(QH9_STABLE, settings=fast)
    out = tmp_path / "grow"
    make_dataset(recipe, out, 2, progress=False)
    first, _ = _records(out)
    report = make_dataset(recipe, out, 4, progress=False)
    assert report.labeled_now == 2 and report.stored == 4
    recs, meta = _records(out)
    assert meta[K.META_SOURCE]["n"] == 4
    for a, b in zip(first, recs[:2]):
        assert a[K.SOURCE_ID] == b[K.SOURCE_ID] and np.array_equal(a[K.F], b[K.F])
    assert len({r[K.SOURCE_ID] for r in recs}) == 4
    # the labels are the recipe's level of theory at the QM9 geometry
    mol = gto.M(atom=list(zip(recs[3][K.Z].tolist(), recs[3][K.POS].tolist())), basis="sto-3g",
                verbose=0)
    mf = scf_hf = __import__("pyscf").scf.RHF(mol)
    scf_hf.conv_tol = 1e-12
    mf.kernel()
    assert np.abs(mf.get_fock() - recs[3][K.F]).max() < 1e-6
    with pytest.raises(Exception, match="different request"):
        make_dataset(recipe, out, 3, progress=False)  # shrinking is refused, nothing lost
    assert len(_records(out)[0]) == 4
    # a new store of other molecules reuses what an earlier store labeled, relabels the rest
    both = tmp_path / "both"
    report = make_dataset(recipe, both, ids=[3, int(recs[1][K.SOURCE_ID][-6:])], progress=False,
                          reuse=out)
    assert report.labeled_now == 1  # water is new; the other record is copied
    again, _ = _records(both)
    np.testing.assert_array_equal(again[1][K.F], recs[1][K.F])
    other_level = dataclasses.replace(recipe, settings=SCFSettings(xc="hf", basis="6-31g"))
    with pytest.raises(Exception, match="another level of theory"):
        make_dataset(other_level, tmp_path / "nope", ids=[3], progress=False, reuse=out)
    ids_out = tmp_path / "ids"
    make_dataset(recipe, ids_out, ids=[3, 1], progress=False)
    recs, meta = _records(ids_out)
    assert [r[K.SOURCE_ID] for r in recs] == ["dsgdb9nsd_000003", "dsgdb9nsd_000001"]
    assert main(["data", "make", "qh9-stable", "--out", str(tmp_path / "x"), "--ids", "1,x"]) == 2
    assert "QM9 indices" in capsys.readouterr().err
    assert main(["data", "make", "md17-water", "--out", str(tmp_path / "x"), "--ids", "1"]) == 2
    assert "does not use QM9" in capsys.readouterr().err


def test_bad_input(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "foreign").mkdir()
    cases = [
        (["nope", "--out", str(tmp_path / "a"), "--n", "3"], "unknown recipe 'nope'"),
        (["md17-water", "--out", str(tmp_path / "a"), "--n", "0"], "positive integer"),
        (["md17-water", "--out", str(tmp_path / "a"), "--n", "-2"], "positive integer"),
        (["md17-water", "--out", str(tmp_path / "a"), "--n", "2", "--workers", "0"], "--workers"),
        (["md17-water", "--out", str(tmp_path / "file" / "a"), "--n", "2"], "not a directory"),
        (["md17-water", "--out", "/proc/hamnet-data-test", "--n", "2"], "cannot create"),
        (["md17-water", "--out", str(tmp_path / "foreign"), "--n", "2"], "not a hamnet dataset"),
    ]
    for args, message in cases:
        assert main(["data", "make", *args]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "foreign"]
    assert os.listdir(tmp_path / "foreign") == []


def test_other_request_on_existing_out(water, capsys):
    assert main(["data", "make", "md17-ethanol", "--out", str(water[0]), "--n", "5"]) == 2
    assert "different request" in capsys.readouterr().err
