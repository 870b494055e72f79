"""Label on a Dask cluster: one task per structure, results streamed back to the client.

``hamnet data make RECIPE --n N --out DIR --scheduler ADDRESS`` hands the labeling
stage of :mod:`data_tools.make` to a running Dask scheduler (``tcp://host:port`` or a
scheduler file written by ``dask scheduler --scheduler-file``). Planning, the store,
the log and the final index stay where they were: on the client, which is the only
writer of the store, so the workers need PySCF and hamnet but no shared filesystem.

What the cluster gives, and what this module adds:

- **A worker that dies mid-SCF.** The scheduler reruns its task on another worker (Dask
  does this by itself); the client stores each task once, when its result arrives, so
  the store ends with exactly one record per structure. A structure whose tasks kill
  ``distributed.scheduler.allowed-failures`` workers in a row (default 3: a crash or
  out-of-memory on that geometry) stops the make with a clear error; the finished
  structures are kept and a rerun retries it.
- **A client that dies.** Nothing of the cluster is needed to resume: rerunning the
  same command submits the structures the store does not have yet.
- **Mixed PySCF versions.** Every worker's PySCF version is compared with the client's
  before anything is submitted, and again on every record (a worker that joins later),
  and a mismatch is a :class:`~data_tools.label.BackendError`: labels of two PySCF
  versions never mix in one store. Each record carries the version, thread count and
  device of the worker that computed it.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Iterator

from data_tools.label import BackendError, LabelResult, check_device, label_task
from hamnet.data import keys as K

log = logging.getLogger("hamnet.data.make")

#: Seconds to wait for the scheduler to answer.
CONNECT_TIMEOUT = 30


def _distributed():
    try:
        import distributed
    except ImportError:
        raise BackendError(
            "--scheduler needs Dask distributed, which is not installed: "
            "pip install 'hamnet[data]' (or 'dask[distributed]')"
        ) from None
    return distributed


def check_scheduler(scheduler: str) -> dict:
    """``Client`` keyword arguments for ``scheduler``, or a one-line :class:`BackendError`.

    ``scheduler`` is an address (``tcp://host:port``, ``tls://...``, ``host:port``) or the
    path of an existing scheduler file (JSON written by ``dask scheduler``).
    """
    _distributed()
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise BackendError(f"--scheduler must be an address or a scheduler file, got {scheduler!r}")
    path = Path(scheduler).expanduser()
    if "://" not in scheduler and (path.suffix == ".json" or path.exists()):
        if not path.is_file():
            raise BackendError(f"--scheduler {scheduler}: no such scheduler file")
        return {"scheduler_file": str(path)}
    host, _, port = scheduler.rpartition("://")[2].rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(
            f"--scheduler {scheduler!r} is neither an address (tcp://host:port) nor an "
            "existing scheduler file"
        )
    return {"address": scheduler}


def connect(scheduler: str):
    """A ``distributed.Client`` of ``scheduler`` (see :func:`check_scheduler`)."""
    distributed = _distributed()
    kwargs = check_scheduler(scheduler)
    try:
        return distributed.Client(**kwargs, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise BackendError(
            f"cannot reach the Dask scheduler {scheduler} in {CONNECT_TIMEOUT} s ({why[:200]})"
        ) from None


def worker_info(device: str = "cpu") -> dict:
    """What a worker labels with: PySCF version, OpenMP threads, and ``device`` (or why not)."""
    import pyscf
    from pyscf import lib

    try:
        where = check_device(device)
    except BackendError as exc:
        where = f"unusable: {exc}"
    return {"pyscf": pyscf.__version__, "threads": int(lib.num_threads()), "device": where}


def check_versions(infos: dict, client_version: str) -> None:
    """Refuse workers (``{address: worker_info}``) whose PySCF is not ``client_version``."""
    bad = {a: i["pyscf"] for a, i in infos.items() if i["pyscf"] != client_version}
    if bad:
        addr, version = sorted(bad.items())[0]
        raise BackendError(
            f"worker {addr} runs PySCF {version} but this client runs PySCF {client_version} "
            f"({len(bad)} of {len(infos)} workers differ); install pyscf=={client_version} "
            "on every worker so that labels of two PySCF versions never mix"
        )


def _check_workers(client, device: str) -> None:
    import pyscf

    if not client.scheduler_info()["workers"]:
        log.info("waiting for the first Dask worker to join the scheduler")
        client.wait_for_workers(1)
    infos = client.run(worker_info, device)
    check_versions(infos, pyscf.__version__)
    unusable = {a: i["device"] for a, i in infos.items() if i["device"].startswith("unusable")}
    if unusable:
        addr, why = sorted(unusable.items())[0]
        raise BackendError(f"worker {addr}: {why[len('unusable: '):]}")
    for addr, info in sorted(infos.items()):
        log.info("worker %s: PySCF %s, %d thread(s), %s",
                 addr, info["pyscf"], info["threads"], info["device"])


def _label_on_worker(args) -> tuple:
    """The task: label one structure; also say which worker did it."""
    from distributed import get_worker

    return label_task(args), get_worker().address


def cluster_results(tasks: list, scheduler: str, device: str = "cpu") -> Iterator[LabelResult]:
    """Label ``tasks`` (as for :func:`~data_tools.label.label_task`) on ``scheduler``.

    Yields each :class:`LabelResult` as it finishes (any order), after checking that the
    worker's PySCF is the client's. Stopping the iteration (Ctrl-C, an error in the
    consumer) cancels the tasks still queued and closes the connection.

    Raises
    ------
    BackendError
        Unreachable scheduler, a worker with another PySCF version or without the device,
        or a structure that killed too many workers.
    """
    import pyscf

    if not tasks:  # nothing left to label: no cluster needed
        return
    distributed = _distributed()
    mine = pyscf.__version__
    client = connect(scheduler)
    futures = []
    try:
        _check_workers(client, device)
        run = uuid.uuid4().hex[:8]  # keys unique across makes sharing one scheduler
        futures = [
            client.submit(_label_on_worker, t, key=f"hamnet-label-{t[0]}-{run}", pure=False)
            for t in tasks
        ]
        source = {f.key: t[3] for f, t in zip(futures, tasks)}
        for fut in distributed.as_completed(futures, loop=client.loop):
            try:
                res, worker = fut.result()
            except distributed.KilledWorker:
                raise BackendError(
                    f"structure {source[fut.key]} ({fut.key}) killed every worker that ran it "
                    "(a crash or out of memory?); finished structures are saved, rerun to retry"
                ) from None
            except CancelledError as exc:  # the scheduler went away (or cancelled the task)
                why = getattr(exc, "reason", None) or "cancelled"
                raise BackendError(
                    f"lost the Dask scheduler {scheduler} ({why}); finished structures are "
                    "saved, rerun the same command to resume"
                ) from None
            if res.record is not None and res.record.get(K.PYSCF_VERSION) != mine:
                check_versions({worker: {"pyscf": res.record.get(K.PYSCF_VERSION)}}, mine)
            fut.release()
            yield res
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        client.close()
