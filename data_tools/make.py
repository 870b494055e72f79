"""``hamnet data make``: plan the geometries, label them in parallel, resume when rerun.

A make runs in three stages, each safe to interrupt:

1. **Plan.** The recipe's geometries (deterministic in the recipe seed) are generated
   into a hidden sibling directory together with metadata that records the request,
   and the directory is renamed to ``--out`` only when the plan is complete. Bad
   input or a crash here leaves no dataset behind.
2. **Label.** Every planned structure without a result is labeled (PySCF, one thread
   per worker process). Each result is committed in its own LMDB transaction: a
   converged record under ``rec/<task>``, a failure under ``fail/<task>`` (counted and
   reported, never data). Ctrl-C or ``kill -9`` loses at most the structures in flight.
3. **Finalize.** The index of stored records (in plan order) and the named splits
   are written with the complete metadata; only then does ``open_dataset`` accept it.

Rerunning the same command on the same ``--out`` skips finished tasks, so no record
is duplicated or lost; a different request on an existing ``--out`` is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from data_tools.geometry import Geometry
from data_tools.label import LabelResult, check_device, init_worker, label_task
from data_tools.readers.common import xc_definition
from data_tools.recipes import Recipe, RecipeError, check_request, geometries, get_recipe, splits
from hamnet.data import keys as K
from hamnet.data.codec import encode
from hamnet.data.errors import DatasetError
from hamnet.data.metadata import new_metadata
from hamnet.data.store import FAIL_PREFIX, META_KEY, PLAN_PREFIX, REC_PREFIX, Store, slot_key
from hamnet.data.writer import check_output_path, partial_path

LOG_NAME = "make.log"
LOCK_NAME = "make.lock"
log = logging.getLogger("hamnet.data.make")


@dataclass
class MakeReport:
    """What a make did; ``str(report)`` is the summary the CLI prints."""

    path: Path
    recipe: str
    requested: int
    stored: int
    failed: int
    labeled_now: int
    seconds: float
    scf_seconds: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    split_sizes: dict = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"{self.recipe} -> {self.path}",
            f"  structures: {self.requested} requested, {self.stored} stored, "
            f"{self.failed} failed SCF (not stored); {self.labeled_now} labeled in this run "
            f"({self.seconds:.1f} s)",
        ]
        if self.scf_seconds:
            lines.append(
                f"  seconds per structure (SCF wall, this run): mean "
                f"{np.mean(self.scf_seconds):.2f}, max {np.max(self.scf_seconds):.2f}"
            )
        for reason in self.failures[:10]:
            lines.append(f"  failed: {reason}")
        if len(self.failures) > 10:
            lines.append(f"  ... {len(self.failures) - 10} more failures in {LOG_NAME}")
        for name, parts in self.split_sizes.items():
            lines.append(f"  split {name}: " + ", ".join(f"{p} {c}" for p, c in parts.items()))
        return "\n".join(lines)


# ---- the plan --------------------------------------------------------------------------


def _encode_plan(g: Geometry) -> bytes:
    # JSON floats round-trip float64 exactly (repr), so the plan is the geometry.
    return json.dumps(
        {"Z": g.Z.tolist(), "pos": g.pos.tolist(), "source_id": g.source_id, "group": g.group}
    ).encode()


def _decode_plan(raw: bytes) -> Geometry:
    d = json.loads(raw)
    return Geometry(
        np.asarray(d["Z"], dtype=np.int64), np.asarray(d["pos"], dtype=np.float64),
        d["source_id"], int(d["group"]),
    )


def _request(recipe: Recipe, n: int) -> dict:
    """What identifies a make: recipe, n and the geometry parameters (JSON-normal)."""
    return json.loads(json.dumps({"recipe": recipe.name, "n": n, **recipe.describe()}))


def _plan_metadata(recipe: Recipe, n: int) -> dict:
    meta = new_metadata()
    s = recipe.settings
    meta.update(
        {
            K.META_RECIPE: recipe.name,
            K.META_XC: s.xc,
            K.META_XC_DEFINITION: xc_definition(s.xc),
            K.META_BASIS: s.basis,
            K.META_GRID_LEVEL: s.grid_level,
            K.META_CONV_TOL: s.conv_tol,
            K.META_CONV_TOL_GRAD: s.conv_tol_grad,
            K.META_PROVENANCE: recipe.provenance,
            K.META_DEVIATIONS: recipe.deviations,
            K.META_SOURCE: _request(recipe, n),
        }
    )
    return meta


def _remove_stale_partials(path: Path) -> None:
    """Delete hidden partial plans of ``path`` left by a killed make (owner dead)."""
    for p in path.parent.glob(f".{path.name}.partial-*"):
        try:
            pid = int((p / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (OSError, ValueError):
            continue


def _create(recipe: Recipe, n: int, path: Path, progress: bool, calculator) -> None:
    """Stage 1: write the plan into a hidden directory, then rename it to ``path``."""
    path = check_output_path(path)
    _remove_stale_partials(path)
    tmp = partial_path(path)
    store = None
    try:
        try:
            store = Store(tmp, write=True, create=True)
        except DatasetError as exc:  # name the path the user gave, not the hidden one
            raise DatasetError(str(exc).replace(str(tmp), str(path))) from exc
        (tmp / "owner.pid").write_text(str(os.getpid()))
        store.write_meta(_plan_metadata(recipe, n))
        desc = f"{recipe.name} geometries"
        with tqdm(total=n, desc=desc, unit="geom", disable=None if progress else True) as bar:
            geoms = geometries(recipe, n, progress=bar.update, calculator=calculator)
        store.put_many((slot_key(PLAN_PREFIX, i), _encode_plan(g)) for i, g in enumerate(geoms))
        store.close()
        store = None
        (tmp / "owner.pid").unlink()
        os.rename(tmp, path)
    except BaseException:
        if store is not None:
            store.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _with_ids(recipe: Recipe, ids: Sequence[int], n: Optional[int]) -> tuple[Recipe, int]:
    """The recipe restricted to explicit QM9 ids, and its number of structures."""
    if not recipe.uses_qm9:
        raise RecipeError(f"--ids selects QM9 molecules; recipe {recipe.name!r} does not use QM9")
    try:
        ids = tuple(int(i) for i in ids)
    except (TypeError, ValueError):
        raise RecipeError(f"--ids must be QM9 indices (integers), got {ids!r}") from None
    if not ids:
        raise RecipeError("--ids is empty")
    recipe = dataclasses.replace(recipe, qm9_ids=ids)
    most = recipe.max_structures()
    if n is None:
        n = most
    elif n != most:
        raise RecipeError(f"--n {n} does not match the {most} structures of {len(ids)} --ids")
    return recipe, n


def _extend_plan(recipe, n_old, n, path, store, meta, progress) -> dict:
    """Grow a finished or partial make of ``recipe`` from ``n_old`` to ``n`` structures.

    The new plan must begin with the old one (checked geometry by geometry); the new
    entries, the new request and ``complete = False`` are written in ONE transaction,
    so an interrupted extension resumes like any make, and no record is touched.
    """
    with tqdm(total=n, desc=f"{recipe.name} geometries", unit="geom", disable=None if progress else True) as bar:
        geoms = geometries(recipe, n, progress=bar.update)
    for i in range(n_old):
        old = _decode_plan(store.get(slot_key(PLAN_PREFIX, i)))
        if old.source_id != geoms[i].source_id or not np.array_equal(old.pos, geoms[i].pos):
            raise DatasetError(
                f"{path}: cannot grow this store to --n {n}: planned structure {i} "
                f"({old.source_id}) differs from the recipe's today ({geoms[i].source_id}); "
                "choose a new --out"
            )
    meta = dict(meta)
    meta[K.META_SOURCE] = _request(recipe, n)
    meta[K.META_COMPLETE] = False
    items = [(slot_key(PLAN_PREFIX, i), _encode_plan(geoms[i])) for i in range(n_old, n)]
    store.put_many(items + [(META_KEY, json.dumps(meta, sort_keys=True).encode())])
    log.info("%s: growing from %d to %d planned structures", recipe.name, n_old, n)
    return meta


_LEVEL_KEYS = (K.META_XC, K.META_BASIS, K.META_GRID_LEVEL, K.META_CONV_TOL, K.META_CONV_TOL_GRAD)


def _reuse_records(reuse, meta: dict, plan: dict, pending: list, store: Store) -> set:
    """Copy into ``store`` the pending structures that ``reuse`` already labeled.

    Only from a store (finished or interrupted) at the same level of theory (functional, basis, grid,
    thresholds), and only records whose atoms and positions equal the plan's exactly.
    Returns the copied task indices; each copy is its own transaction, as a label is.
    """
    from hamnet.data.codec import decode

    other = Store(reuse)  # read-only; finished or not (an interrupted make's records count)
    copied = set()
    try:
        theirs = {k: other.read_meta().get(k) for k in _LEVEL_KEYS}
        ours = {k: meta.get(k) for k in _LEVEL_KEYS}
        if theirs != ours:
            diff = [k for k in _LEVEL_KEYS if theirs[k] != ours[k]]
            raise DatasetError(f"--reuse {reuse}: another level of theory (differs in {diff})")
        where = {}  # source_id -> record key; only keys are held, not the matrices
        for key in other.keys(REC_PREFIX):
            sid = decode(other.get(key), where=f"{reuse} {key.decode()}")[K.SOURCE_ID]
            where.setdefault(sid, key)
        for i in pending:
            key = where.get(plan[i].source_id)
            if key is None:
                continue
            raw = other.get(key)
            rec = decode(raw, where=f"{reuse} {key.decode()}")
            if np.array_equal(rec[K.Z], plan[i].Z) and np.array_equal(rec[K.POS], plan[i].pos):
                store.put(slot_key(REC_PREFIX, i), raw)  # the checked bytes, CRC and all
                copied.add(i)
    finally:
        other.close()
    log.info("reused %d labeled structures from %s", len(copied), reuse)
    return copied


# ---- labeling ------------------------------------------------------------------------


def _results(tasks: list, workers: int, scheduler=None, device="cpu") -> Iterator[LabelResult]:
    if scheduler is not None:  # one Dask task per structure; this process stays the writer
        from data_tools.cluster import cluster_results

        yield from cluster_results(tasks, scheduler, device)
        return
    if workers == 1:  # in-process, also on one thread: parallelism comes from --workers
        from pyscf import lib

        saved_threads = lib.num_threads()
        lib.num_threads(1)
        try:
            for t in tasks:
                yield label_task(t)
        finally:
            lib.num_threads(saved_threads)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
    )
    try:
        with _one_thread_env():  # workers start at submit() and inherit the environment
            futures = [pool.submit(label_task, t) for t in tasks]
        with _sigterm_as_exit():
            for fut in as_completed(futures):
                yield fut.result()
    except BaseException:  # Ctrl-C, SIGTERM, a dead worker, or the consumer stopped: stop now
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _sigterm_as_exit():
    """Turn SIGTERM (``kill``, a batch system's time limit) into ``SystemExit`` while the
    pool runs, so that the workers are terminated too instead of labeling on, orphaned,
    for nobody. (``kill -9`` cannot be caught; the next run resumes all the same.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _one_thread_env():
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


@contextlib.contextmanager
def _exclusive(path: Path):
    """Hold ``path/make.lock`` so that two makes never write one store."""
    with open(path / LOCK_NAME, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(f"another 'hamnet data make' is writing {path}") from None
        yield


@contextlib.contextmanager
def _logfile(path: Path):
    handler = logging.FileHandler(path / LOG_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)  # the level is the application's (hamnet.cli sets INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def make_dataset(
    recipe: Union[str, Recipe],
    out,
    n: Optional[int] = None,
    *,
    ids: Optional[Sequence[int]] = None,
    workers: int = 1,
    progress: bool = True,
    calculator=None,
    scheduler: Optional[str] = None,
    device: str = "cpu",
    reuse=None,
) -> MakeReport:
    """Make (or resume) the dataset of ``recipe`` with ``n`` structures at ``out``.

    Parameters
    ----------
    recipe : str or Recipe
        A name from :data:`data_tools.recipes.RECIPES` (or a Recipe object, for tests).
    out : str or Path
        Dataset directory. New: created atomically. Existing: must hold a make of the
        same request, which is continued.
    n : int, optional
        Structures to plan (> 0). For a QM9 recipe the first ``n`` molecules of its
        priority order; a later request with a larger ``n`` on the same ``out`` grows
        the store, keeping every record (:meth:`Recipe.extendable`).
    ids : sequence of int, optional
        QM9 recipes only: label exactly these QM9 indices (``n`` may then be omitted).
    workers : int
        Labeling processes (spawned, one OpenMP thread each); 1 labels in-process.
    calculator : callable, optional
        Factory of an ASE calculator for the dynamics (default GFN2-xTB).
    scheduler : str, optional
        Dask scheduler address or scheduler file: label there, one task per structure
        (:mod:`data_tools.cluster`), instead of on local processes.
    device : str
        ``"cpu"`` (PySCF) or ``"cuda"`` (gpu4pyscf, on the labeling processes' GPU).
    reuse : str, Path or a list of them, optional
        Stores at the same level of theory (finished or interrupted): a planned structure found there
        (same ``source_id``, identical atoms and positions) is copied, not relabeled.

    Raises
    ------
    RecipeError, DatasetError
        Unknown recipe, bad ``n``/``workers``, unwritable or foreign ``out``.
    BackendError
        ``device`` or ``scheduler`` cannot be used (one-line reason).
    """
    t0 = time.perf_counter()
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if ids is not None:
        recipe, n = _with_ids(recipe, ids, n)
    check_request(recipe, n)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise RecipeError(f"--workers must be a positive integer, got {workers!r}")
    check_device(device, probe=scheduler is None)  # the cluster's workers are probed there
    if scheduler is not None:
        from data_tools.cluster import check_scheduler

        if workers != 1:
            raise RecipeError("--workers is for local labeling; with --scheduler the "
                              "cluster's workers label")
        check_scheduler(scheduler)
    path = Path(out).expanduser().absolute()
    if not path.exists():
        _create(recipe, n, path, progress, calculator)
    elif not (path / "data.mdb").is_file():
        raise DatasetError(f"{path} exists and is not a hamnet dataset; choose a new --out")

    store = Store(path, write=True)
    try:
        with _exclusive(path), _logfile(path):
            return _label_and_finalize(recipe, n, path, store, workers, progress, t0,
                                       scheduler=scheduler, device=device, reuse=reuse)
    finally:
        store.close()


def _label_and_finalize(recipe, n, path, store, workers, progress, t0, *, scheduler=None,
                        device="cpu", reuse=None) -> MakeReport:
    meta = store.read_meta()
    want = _request(recipe, n)
    have = meta.get(K.META_SOURCE) or {}
    diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
    if diff == ["n"] and recipe.extendable() and int(have["n"]) < n:
        meta = _extend_plan(recipe, int(have["n"]), n, path, store, meta, progress)
    elif diff:
        raise DatasetError(
            f"{path} was made by a different request (differs in {diff}: it has "
            f"recipe {have.get('recipe')!r}, n {have.get('n')!r}); rerun exactly that "
            "command to resume it, or choose a new --out"
        )
    plan = {int(k[len(PLAN_PREFIX):]): _decode_plan(store.get(k)) for k in store.keys(PLAN_PREFIX)}
    if sorted(plan) != list(range(n)):
        raise DatasetError(f"{path}: the geometry plan is incomplete ({len(plan)} of {n})")
    done = set(store.slots(REC_PREFIX)) | set(store.slots(FAIL_PREFIX))
    pending = [i for i in range(n) if i not in done]
    for other in [reuse] if isinstance(reuse, (str, os.PathLike)) else (reuse or []):
        if pending:
            copied = _reuse_records(other, meta, plan, pending, store)
            pending = [i for i in pending if i not in copied]
    log.info("%s: %d planned, %d already done, %d to label with %s", recipe.name, n, len(done),
             len(pending), f"{workers} worker(s)" if scheduler is None else f"Dask {scheduler}")
    report = MakeReport(path, recipe.name, n, 0, 0, 0, 0.0)
    tasks = [(i, plan[i].Z, plan[i].pos, plan[i].source_id, recipe.settings, True, device)
             for i in pending]
    with tqdm(total=n, initial=n - len(pending), desc=recipe.name, unit="struct",
              disable=None if progress else True) as bar:
        for res in _results(tasks, workers, scheduler, device):
            if res.record is not None:
                store.put(slot_key(REC_PREFIX, res.task), encode(res.record, f"task {res.task}"))
                report.scf_seconds.append(res.record[K.SECONDS])
                log.info("task %d %s: converged in %d cycles, %.2f s, E = %.10f Ha", res.task,
                         res.record[K.SOURCE_ID], res.record[K.CYCLES], res.record[K.SECONDS],
                         res.record[K.ENERGY])
            else:
                fail = {"source_id": plan[res.task].source_id, "reason": res.error}
                store.put(slot_key(FAIL_PREFIX, res.task), json.dumps(fail).encode())
                log.warning("task %d failed (not stored): %s", res.task, res.error)
            report.labeled_now += 1
            bar.update(1)
    slots = store.slots(REC_PREFIX)
    fails = [json.loads(store.get(k))["reason"] for k in store.keys(FAIL_PREFIX)]
    sp = splits(recipe, [len(plan[s].Z) for s in slots], [plan[s].group for s in slots])
    meta.update({K.META_SPLITS: sp, K.META_FAILED: len(fails)})
    store.finalize(meta, slots)
    report.stored, report.failed, report.failures = len(slots), len(fails), fails
    report.split_sizes = {k: {p: len(v) for p, v in parts.items()} for k, parts in sp.items()}
    report.seconds = time.perf_counter() - t0
    log.info("finished: %d stored, %d failed", report.stored, report.failed)
    return report
