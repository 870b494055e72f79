"""`hamnet data make --scheduler` on a real Dask LocalCluster (2 single-threaded worker
processes): a worker killed mid-SCF, a resumed store, unconverged SCFs, mixed PySCF
versions; and `--device cuda` (gpu4pyscf), refused here with a clear reason."""

import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import types

import numpy as np
import pytest
from pyscf import dft, gto

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (comes with distributed)

from data_tools import cluster as C  # noqa: E402
from data_tools import label as L  # noqa: E402
from data_tools.label import BackendError, SCFSettings, run_scf  # noqa: E402
from data_tools.make import make_dataset  # noqa: E402
from data_tools.recipes import RECIPES, geometries  # noqa: E402
from hamnet.cli import main  # noqa: E402
from hamnet.data import keys as K, open_dataset  # noqa: E402
from hamnet.data.store import FAIL_PREFIX, REC_PREFIX, Store  # noqa: E402
from hamnet.testing import drop_records  # noqa: E402

# The helpers below run on the workers, which cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 8
FRAMES = [f"md17-water/frame/{i:06d}" for i in range(N)]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=logging.CRITICAL,
    ) as c, distributed.Client(c, set_as_default=False) as client:
        yield c.scheduler_address, client


def _executing(dask_worker):
    return os.getpid(), sorted(str(ts.key) for ts in dask_worker.state.executing)


def _set_pyscf_version(version):
    import pyscf

    old, pyscf.__version__ = pyscf.__version__, version
    return old


def _records(path):
    with open_dataset(path) as ds:
        return list(ds)


def _fresh_fock(rec):
    """PBE/def2-SVP at the stored geometry, tighter and from another start than labeling."""
    mol = gto.M(atom=list(zip(rec[K.Z].tolist(), rec[K.POS].tolist())), unit="Angstrom",
                basis="def2-svp", verbose=0)
    mf = dft.RKS(mol, xc="pbe")
    mf.grids.level = 3
    mf.conv_tol, mf.conv_tol_grad = 1e-12, 1e-9
    mf.init_guess = "1e"
    mf.kernel()
    assert mf.converged
    return mf.get_fock()


@pytest.fixture(scope="module")
def killed_run(cluster, tmp_path_factory):
    """Label N water frames on the cluster; SIGKILL one worker while it runs a task."""
    address, client = cluster
    path = tmp_path_factory.mktemp("cluster") / "water"
    killed, stop = [], threading.Event()

    def killer():
        while not stop.is_set():
            log = path / "make.log"
            if log.exists() and "converged" in log.read_text():  # mid-run: one record stored
                for pid, keys in client.run(_executing).values():
                    if any(k.startswith("hamnet-label-") for k in keys):
                        os.kill(pid, signal.SIGKILL)
                        killed.append((pid, keys))
                        return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        report = make_dataset("md17-water", path, N, scheduler=address, progress=False)
    finally:
        stop.set()
        thread.join(10)
    return path, report, killed


@pytest.mark.slow
def test_worker_killed_mid_scf(killed_run, cluster):
    """Acceptance: exactly N complete, distinct records equal to fresh PySCF (1e-6 Ha)."""
    import pyscf

    path, report, killed = killed_run
    assert len(killed) == 1, "no worker was caught running a task"
    pid, keys = killed[0]
    lost = int(keys[0].split("-")[2])  # hamnet-label-<task>-<run>
    assert pid not in cluster[1].run(os.getpid).values()  # the nanny started a new process
    assert (report.stored, report.failed, report.labeled_now) == (N, 0, N)
    recs = _records(path)
    assert [r[K.SOURCE_ID] for r in recs] == FRAMES  # complete, distinct, in plan order
    assert (path / "make.log").read_text().count("converged") == N  # each stored once
    pos = np.stack([r[K.POS] for r in recs])
    assert min(np.abs(pos[i] - pos[j]).max() for i in range(N) for j in range(i)) > 1e-3
    plan = geometries(RECIPES["md17-water"], N)
    for i in sorted({lost, 0, N - 1}):  # the killed task's rerun, and two others
        assert np.array_equal(recs[i][K.POS], plan[i].pos)
        assert np.abs(recs[i][K.F] - _fresh_fock(recs[i])).max() < 1e-6
    for r in recs:  # worker provenance in every record
        assert (r[K.PYSCF_VERSION], r[K.THREADS], r[K.DEVICE]) == (pyscf.__version__, 1, "cpu")


@pytest.mark.slow
def test_partial_store_resumes_through_dask(killed_run, cluster, tmp_path):
    """A client killed mid-run leaves records missing: the rerun labels only those."""
    path = tmp_path / "w"
    shutil.copytree(killed_run[0], path)
    before = _records(path)
    drop_records(path, [2, 5])
    report = make_dataset("md17-water", path, N, scheduler=cluster[0], progress=False)
    assert (report.labeled_now, report.stored) == (2, N)
    after = _records(path)
    assert [r[K.SOURCE_ID] for r in after] == FRAMES
    for i in range(N):
        same = np.array_equal(after[i][K.F], before[i][K.F])
        assert same if i not in (2, 5) else np.abs(after[i][K.F] - before[i][K.F]).max() < 1e-8
    again = make_dataset("md17-water", path, N, scheduler="tcp://127.0.0.1:1", progress=False)
    assert again.labeled_now == 0  # nothing left: the scheduler is not even contacted


@pytest.mark.slow
def test_unconverged_scf_is_counted_not_stored(cluster, tmp_path):
    recipe = dataclasses.replace(
        RECIPES["md17-water"], settings=SCFSettings(xc="pbe", basis="def2-svp", max_cycle=2))
    report = make_dataset(recipe, tmp_path / "fail", 2, scheduler=cluster[0], progress=False)
    assert (report.stored, report.failed) == (0, 2)
    assert "not converged in 2 cycles" in report.failures[0]
    with open_dataset(tmp_path / "fail") as ds:
        assert len(ds) == 0 and ds.metadata[K.META_FAILED] == 2
    store = Store(tmp_path / "fail")
    assert len(store.slots(FAIL_PREFIX)) == 2
    store.close()


@pytest.mark.slow
def test_other_pyscf_version_is_refused(cluster, tmp_path, monkeypatch, capsys):
    address, client = cluster
    old = client.run(_set_pyscf_version, "2.0.0-other")
    try:
        out = tmp_path / "mixed"
        with pytest.raises(BackendError, match=r"runs PySCF 2\.0\.0-other but this client runs"):
            make_dataset("md17-water", out, 2, scheduler=address, progress=False)
        # a worker that joins after the start-up check: refused at its first record
        monkeypatch.setattr(C, "_check_workers", lambda client, device: None)
        with pytest.raises(BackendError, match=r"runs PySCF 2\.0\.0-other"):
            make_dataset("md17-water", out, 2, scheduler=address, progress=False)
        assert Store(out).slots(REC_PREFIX) == []  # nothing of the other version stored
    finally:
        client.run(_set_pyscf_version, next(iter(old.values())))
    # same versions again: the CLI, through a scheduler file, finishes the make
    sched = tmp_path / "scheduler.json"
    sched.write_text(json.dumps({"type": "Scheduler", "address": address}))
    args = ["data", "make", "md17-water", "--out", str(out), "--n", "2", "--quiet"]
    assert main([*args, "--scheduler", str(sched)]) == 0
    assert "2 stored" in capsys.readouterr().out
    assert [r[K.SOURCE_ID] for r in _records(out)] == FRAMES[:2]


def test_bad_scheduler_and_device(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "a")
    base = ["data", "make", "md17-water", "--out", out, "--n", "2", "--quiet"]
    cases = [
        (["--scheduler", "nonsense"], "neither an address (tcp://host:port) nor an existing"),
        (["--scheduler", str(tmp_path / "missing.json")], "no such scheduler file"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers is for local"),
    ]
    try:
        import cupy  # noqa: F401
    except ImportError:  # the usual case here: no gpu4pyscf
        cases.append((["--device", "cuda"], "--device cuda needs gpu4pyscf, which is not"))
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "a").exists()  # refused before anything was planned
    with pytest.raises(BackendError, match="--device must be one of cpu, cuda; got 'gpu'"):
        make_dataset("md17-water", out, 2, device="gpu")
    monkeypatch.setattr(C, "CONNECT_TIMEOUT", 1)
    assert main([*base, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "cannot reach the Dask scheduler tcp://127.0.0.1:1 in 1 s" in capsys.readouterr().err


def test_provenance_keys_round_trip():
    from hamnet.data.codec import decode, encode
    from hamnet.data.errors import RecordError

    rec = {K.Z: [8, 1, 1], K.POS: np.eye(3), K.F: np.eye(4), K.SOURCE_ID: "w/0",
           K.PYSCF_VERSION: "2.14.0", K.THREADS: 1, K.DEVICE: "cuda:0 GPU, gpu4pyscf 1.9.2"}
    back = decode(encode(rec))
    assert (back[K.PYSCF_VERSION], back[K.THREADS], back[K.DEVICE]) == (
        "2.14.0", 1, "cuda:0 GPU, gpu4pyscf 1.9.2")
    assert type(back[K.THREADS]) is int
    old = {k: v for k, v in rec.items() if k not in (K.PYSCF_VERSION, K.THREADS, K.DEVICE)}
    assert set(decode(encode(old))) == {K.Z, K.POS, K.F, K.SOURCE_ID}  # records made before
    with pytest.raises(RecordError, match="'device' must be a non-empty string"):
        encode({**rec, K.DEVICE: 0})
    with pytest.raises(RecordError, match="'threads' must be a scalar"):
        encode({**rec, K.THREADS: [1, 2]})


# ---- --device cuda ----------------------------------------------------------------------


class _OnDevice:
    """Stands in for a CuPy array: the data come back to the host with .get()."""

    def __init__(self, a):
        self._a = a

    def get(self):
        return np.array(self._a)


def _fake_cupy(count):
    def get_count():
        if isinstance(count, Exception):
            raise count
        return count

    runtime = types.SimpleNamespace(
        getDeviceCount=get_count, getDeviceProperties=lambda i: {"name": b"Fake GPU"})
    return types.SimpleNamespace(cuda=types.SimpleNamespace(
        runtime=runtime, Device=lambda: types.SimpleNamespace(id=0)))


@pytest.fixture
def fake_gpu(monkeypatch):
    """gpu4pyscf and CuPy replaced by CPU PySCF: tests the wiring, not gpu4pyscf."""
    calls = []

    def rks(mol):
        calls.append(mol)
        mf = dft.RKS(mol)
        cpu_fock = mf.get_fock
        mf.get_fock = lambda *a, **k: cpu_fock(*a, **k) if a or k else _OnDevice(cpu_fock())
        return mf

    g4p = types.ModuleType("gpu4pyscf")
    g4p.__version__ = "0.0-fake"
    g4p.dft = types.ModuleType("gpu4pyscf.dft")
    g4p.dft.RKS = rks
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(1))
    monkeypatch.setitem(sys.modules, "gpu4pyscf", g4p)
    monkeypatch.setitem(sys.modules, "gpu4pyscf.dft", g4p.dft)
    L._cuda_device.cache_clear()
    yield calls
    L._cuda_device.cache_clear()


def test_device_cuda_uses_gpu4pyscf_when_present(fake_gpu):
    g = geometries(RECIPES["md17-water"], 1)[0]
    settings = RECIPES["md17-water"].settings
    gpu = run_scf(g.Z, g.pos, settings, "x", device="cuda")
    assert len(fake_gpu) == 1  # gpu4pyscf's RKS ran the SCF
    cpu = run_scf(g.Z, g.pos, settings, "x")
    assert type(gpu[K.F]) is np.ndarray and np.abs(gpu[K.F] - cpu[K.F]).max() < 1e-10
    assert gpu[K.DEVICE] == "cuda:0 Fake GPU, gpu4pyscf 0.0-fake" and cpu[K.DEVICE] == "cpu"


def test_device_cuda_refused_without_device_or_gpu4pyscf(monkeypatch):
    L._cuda_device.cache_clear()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(RuntimeError(
        "cudaErrorInsufficientDriver: CUDA driver version is\ninsufficient")))
    with pytest.raises(BackendError) as exc:
        L.check_device("cuda")
    assert str(exc.value) == (
        "--device cuda: no usable CUDA device (RuntimeError: cudaErrorInsufficientDriver: "
        "CUDA driver version is insufficient); use --device cpu")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(0))
    with pytest.raises(BackendError, match=r"no usable CUDA device \(none found\)"):
        L.check_device("cuda")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(1))
    monkeypatch.setitem(sys.modules, "gpu4pyscf", None)  # import gpu4pyscf -> ImportError
    with pytest.raises(BackendError, match="gpu4pyscf cannot be imported"):
        L.check_device("cuda")
    # a labeling process that cannot use the device stops the make (not a failed structure)
    g = geometries(RECIPES["md17-water"], 1)[0]
    with pytest.raises(BackendError):
        L.label_task((0, g.Z, g.pos, "x", RECIPES["md17-water"].settings, True, "cuda"))
    L._cuda_device.cache_clear()


@pytest.mark.slow
def test_gpu4pyscf_fock_agrees_with_pyscf():
    """On a machine with gpu4pyscf and a GPU: F(GPU) = F(CPU) to 1e-6 Ha (H2O, PBE)."""
    try:
        where = L.check_device("cuda")
    except BackendError as exc:
        pytest.skip(str(exc))
    g = geometries(RECIPES["md17-water"], 1)[0]
    settings = RECIPES["md17-water"].settings
    gpu = run_scf(g.Z, g.pos, settings, "x", device="cuda")
    cpu = run_scf(g.Z, g.pos, settings, "x")
    diff = np.abs(gpu[K.F] - cpu[K.F]).max()
    print(f"{where}: max |F_gpu - F_cpu| = {diff:.2e} Ha, |dE| = "
          f"{abs(gpu[K.ENERGY] - cpu[K.ENERGY]):.2e} Ha")
    assert diff < 1e-6
