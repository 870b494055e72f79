"""Side-by-side, equal-time comparisons (wall or CPU time) of training configurations ("arms"), several seeds.

Each ``--arm NAME "KEY=VALUE ..."`` is a set of ``hamnet train --set`` overrides (values
are YAML; split with shlex, so quoting works; ``{seed}`` in a value is replaced by the
run's seed, e.g. ``model.init_from=runs/base/off/seed{seed}/best.pt``). Every arm trains
once per ``--seeds`` seed in ``OUT/ARM/seed{S}`` with::

    python -m hamnet.cli train CONFIG --run-dir OUT/ARM/seedS --set seed=S \\
        --set limits.max_minutes=M --set limits.max_steps=null --set limits.clock=C \\
        [global --set] [arm overrides] --quiet

All runs start at the same time (``--max-parallel`` caps that), each on one thread
(``OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1``), so they share the
machine's contention alike and the same minutes of training mean the same for each.
With ``--clock cpu`` a minute is a minute of the run's CPU time (``limits.clock: cpu``):
one thread's CPU minute is a wall minute on a free core, so runs get equal compute even
when there are more runs (or other jobs) than cores.
Every run's stdout and stderr go to its ``stdout.log``. A run that has ``eval_test.json``
is done and skipped; any other is (re)started, and ``hamnet train`` resumes it from its
``last.pt``: after an interruption, run the same command again. A recipe store that
does not exist yet is generated once, before any run starts.

``OUT/arms.json`` (written before launching) records the command line, config, arms,
seeds, limits and the machine. At the end (or alone with ``--summarize-only``):

* ``OUT/summary.json`` - per run: test metrics (``eval_test.json``, reporting units) and
  its mean-block baseline, steps reached, mean structures/s, parameters, the last value of
  every ``diag_*`` column of ``metrics.csv``, SCF cycles (``--scf``); per arm: mean and
  sample standard deviation of each over the seeds; runs that are missing or failed;
* ``OUT/summary.md`` - the table for ``benchmarks/README.md``, then one row per run;
* ``OUT/learning_curves.png`` - validation MAE of H against training minutes, one
  colour per arm, one line per seed.

``--scf`` runs ``benchmarks/scf_speedup.py --guesses minao`` on each run's ``best.pt``
and the run's exact test records (from its ``split.json``), in parallel on all cores,
into ``OUT/ARM/seedS/scf_test.json``: SCF cycles from the model's guess and from minao.

Example (the TraceGrad default, three seeds, 20 minutes each)::

    python benchmarks/arms.py benchmarks/configs/md17-water.yaml --out runs/arms/tracegrad \\
        --minutes 20 --seeds 0 1 2 --arm off "model.tracegrad=false" --arm on "model.tracegrad=true" --scf

Exit status: 0 every run done, 1 some run missing or failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

from hamnet.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
ARMS_FILE, SUMMARY_JSON, SUMMARY_MD, CURVES_PNG = "arms.json", "summary.json", "summary.md", "learning_curves.png"
DONE_FILE, LOG_FILE, SCF_FILE, SCF_LOG = "eval_test.json", "stdout.log", "scf_test.json", "scf_stdout.log"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
LEGEND_WIDTH = 100  # characters per line of an arm's legend entry (its overrides, wrapped)
PROGRESS_EVERY = 30.0  # seconds between progress lines
SEED_FIELD = "{seed}"  # in an override value: the run's seed
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # a directory name
# (summary key, markdown header) of the main table, in order; the diag_* and SCF columns follow
TABLE = (("params", "params"), ("steps", "steps"), ("structures_per_s", "structures/s"),
         ("test_H_mae_uHa", "test H MAE (µHa)"), ("test_eps_occ_mae_uHa", "ε_occ MAE (µHa)"),
         ("test_psi_cos_%", "ψ (%)"))
SCF_TABLE = (("scf_cycles_model", "SCF cycles (model)"), ("scf_cycles_minao", "SCF cycles (minao)"),
             ("scf_ratio", "cycles model/minao"), ("scf_fallback_share", "guard fell back to minao"))


class ArmsError(ValueError):
    """Bad input: reported as one line, exit status 2."""


# ---- the plan ----------------------------------------------------------------------------------


def parse_arms(specs) -> dict:
    """``[[NAME, "K=V K=V", ...], ...]`` (``--arm`` values) -> ``{NAME: ["K=V", ...]}``."""
    arms = {}
    for spec in specs or []:
        if len(spec) < 2:
            raise ArmsError(f"--arm {' '.join(spec)}: give a NAME and its overrides, "
                            "e.g. --arm off \"model.tracegrad=false\"")
        name, items = spec[0], parse_overrides(spec[1:], f"--arm {spec[0]}")
        if not ARM_NAME.match(name) or "=" in name:
            raise ArmsError(f"--arm {name!r}: a name is letters, digits and _ . + - (it names a directory)")
        if name in arms:
            raise ArmsError(f"--arm {name}: given twice; arm names must differ")
        if not items:
            raise ArmsError(f"--arm {name}: no overrides; give KEY=VALUE items, e.g. \"model.tracegrad=true\"")
        arms[name] = items
    return arms


def parse_overrides(texts, where: str) -> list:
    """``KEY=VALUE`` items of shlex-split ``texts``; ``seed`` is the runner's (``--seeds``)."""
    items = []
    for text in texts:
        try:
            items += shlex.split(text)
        except ValueError as exc:
            raise ArmsError(f"{where}: cannot split {text!r}: {exc}") from None
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ArmsError(f"{where}: {item!r} is not KEY=VALUE (e.g. model.tracegrad=false)")
        if key.strip() == "seed":
            raise ArmsError(f"{where}: {item!r}: the seed of each run comes from --seeds")
    return items


def limit_overrides(minutes: Optional[float], steps: Optional[int], clock: str = "wall") -> list:
    """The ``--set`` items of the training budget (the other limit removed when only one is given)."""
    return [f"limits.max_minutes={'null' if minutes is None else repr(float(minutes))}",
            f"limits.max_steps={'null' if steps is None else int(steps)}", f"limits.clock={clock}"]


def _minutes(plan: dict) -> str:
    """``"20 min"``, or ``"20 CPU min"`` for a plan on the CPU clock."""
    return f"{plan['minutes']:g}{' CPU' if plan.get('clock') == 'cpu' else ''} min"


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return Path(out) / arm / f"seed{seed}"


def with_seed(items, seed: int) -> list:
    """``items`` with every ``{seed}`` replaced by the run's seed, so that one arm can start
    each seed from its own model: ``model.init_from=runs/base/off/seed{seed}/best.pt``."""
    return [item.replace(SEED_FIELD, str(seed)) for item in items]


def train_command(config, out: Path, arm: str, seed: int, overrides: list, limits: list) -> list:
    """The ``hamnet train`` argv of one run: seed, limits, then the global and the arm's
    overrides (``{seed}`` in them replaced by the seed)."""
    cmd = [sys.executable, "-m", "hamnet.cli", "train", str(config), "--run-dir", str(run_dir(out, arm, seed))]
    for item in [f"seed={seed}", *limits, *with_seed(overrides, seed)]:
        cmd += ["--set", item]
    return cmd + ["--quiet"]


def check_configs(config, arms: dict, global_sets: list, limits: list, seeds=(0,)) -> dict:
    """``{arm: TrainConfig}`` as ``hamnet train`` will build it for every seed (the first
    seed's is returned): a typo, or a ``{seed}`` file that does not exist, fails now, not
    after the other runs trained for an hour."""
    from hamnet.commands.train import build_config
    from hamnet.errors import HamnetError
    from hamnet.pretrained import find_pretrained

    cfgs = {}
    for name, items in arms.items():
        for seed in seeds:
            sets = with_seed([*global_sets, *items], seed)
            ns = argparse.Namespace(config=str(config), data=None, max_minutes=None, max_steps=None,
                                    overrides=[f"seed={seed}", *limits, *sets])
            try:
                cfg = build_config(ns)
                init = cfg.model.get("init_from")
                # hamnet.model.load_model's rule: an existing file, else a shipped model's name
                if init and not Path(init).is_file() and find_pretrained(init) is None:
                    raise ArmsError(f"model.init_from: no file at {init} (seed {seed})")
            except (HamnetError, ValueError, OSError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ArmsError(f"arm {name}: {first}") from None
            cfgs.setdefault(name, cfg)
    return cfgs


def prepare_stores(cfgs: dict) -> None:
    """Open (and if needed generate, once) every store the arms train on, before the runs
    start: parallel runs would otherwise all generate the same recipe store."""
    from hamnet.train.data import resolve_store

    seen = set()
    for cfg in cfgs.values():
        key = json.dumps(cfg.data.model_dump(), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            resolve_store(cfg.data, progress=False)


def machine() -> dict:
    import torch

    import hamnet

    info = {"cpu_count": os.cpu_count(), "torch": torch.__version__, "hamnet": hamnet.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "host": platform.node()}
    try:
        info["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, text=True,
                                     capture_output=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_plan(out: Path, plan: dict) -> None:
    """``OUT/arms.json``; refuses an OUT that holds other arms under the same names."""
    path = out / ARMS_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        changed = [a for a in plan["arms"] if a in old.get("arms", {}) and old["arms"][a] != plan["arms"][a]]
        if changed or old.get("config") != plan["config"] or old.get("global_sets") != plan["global_sets"]:
            what = f"arms {', '.join(changed)}" if changed else "config or global --set"
            raise ArmsError(f"{out} holds runs of other {what} ({path}); use another --out")
        plan = {**plan, "arms": {**old.get("arms", {}), **plan["arms"]},
                "seeds": sorted(set(old.get("seeds", [])) | set(plan["seeds"])),
                "history": old.get("history", []) + [old.get("command")]}
    atomic_write_text(path, json.dumps(plan, indent=1) + "\n")


# ---- launching -----------------------------------------------------------------------------------


def launch(jobs: list, max_parallel: int, progress_every: float = PROGRESS_EVERY, poll: float = 1.0,
           log_file: str = LOG_FILE) -> dict:
    """Run ``jobs`` (``(label, argv, run_dir)``) at most ``max_parallel`` at a time, each
    writing stdout and stderr to ``run_dir/log_file``.

    Returns ``{label: exit status}``. Children get their own session, so a Ctrl-C reaches
    only this runner, which forwards one SIGTERM to each (``hamnet train`` then saves
    ``last.pt``), waits for them and raises KeyboardInterrupt.
    """
    env = {**os.environ, **ONE_THREAD}
    queue, running, status = list(jobs), {}, {}
    t0 = last = time.monotonic()

    def line():
        m, s = divmod(int(time.monotonic() - t0), 60)
        failed = sum(rc != 0 for rc in status.values())
        print(f"[arms] {m}:{s:02d} elapsed: {len(status) - failed}/{len(jobs)} finished, {len(running)} running, "
              f"{len(queue)} queued" + (f", {failed} failed" if failed else ""), flush=True)

    def stop(*_):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, stop)
    try:
        while queue or running:
            while queue and len(running) < max_parallel:
                label, argv, rd = queue.pop(0)
                rd.mkdir(parents=True, exist_ok=True)
                with open(rd / log_file, "a") as log:
                    log.write(f"$ {shlex.join(argv)}\n")
                    log.flush()
                    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
                running[label] = (proc, rd)
            if time.monotonic() - last >= progress_every:
                line()
                last = time.monotonic()
            time.sleep(poll)
            for label, (proc, rd) in list(running.items()):
                if proc.poll() is not None:
                    status[label] = proc.returncode
                    del running[label]
                    if proc.returncode != 0:
                        print(f"[arms] {label} failed (exit status {proc.returncode}); see {rd / log_file}",
                              flush=True)
        line()
    except KeyboardInterrupt:
        print(f"[arms] interrupted: stopping {len(running)} run(s) (they save last.pt); "
              "rerun the same command to resume", file=sys.stderr, flush=True)
        for proc, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in running.values():
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
    return status


# ---- SCF -----------------------------------------------------------------------------------------


def scf_command(rd: Path, max_molecules: Optional[int] = None) -> tuple[Optional[list], Optional[int]]:
    """``(scf_speedup.py argv, number of molecules or None)`` for a run's best.pt on its
    test records; ``(None, None)`` without best.pt or test records.

    The records are the exact test indices of the run's ``split.json``; without one, the
    store and named split of its ``config.yaml`` (``data.path`` or ``<root>/<recipe>-<n>``).
    """
    from hamnet.data.splits import read_run_split

    if not (rd / "best.pt").is_file():
        return None, None
    cmd = [sys.executable, str(HERE / "scf_speedup.py"), "--model", str(rd / "best.pt"),
           "--guesses", "minao", "--out", str(rd / SCF_FILE)]
    doc = read_run_split(rd)
    if doc is not None:
        test = doc["parts"].get("test", [])[:max_molecules]
        if not test:
            return None, None
        return cmd + ["--data", doc["store"], "--indices", ",".join(map(str, test))], len(test)
    import yaml

    cfg = yaml.safe_load((rd / "config.yaml").read_text())
    data, split = cfg["data"], cfg.get("split") or {}
    store = data.get("path") or str(Path(data.get("root") or "data") / f"{data['recipe']}-{data['n']}")
    cmd += ["--data", store, "--part", split.get("test", "test")]
    if split.get("name"):
        cmd += ["--split", split["name"]]
    return cmd + (["--indices", f":{max_molecules}"] if max_molecules else []), None


def run_scf(out: Path, arms: dict, seeds: list, max_molecules: Optional[int] = None) -> None:
    """``scf_test.json`` for every trained run without a complete one, up to the core count at once."""
    jobs = []
    for arm in arms:
        for seed in seeds:
            rd = run_dir(out, arm, seed)
            cmd, n = scf_command(rd, max_molecules)
            if cmd is None or (n is not None and _scf_done(rd) >= n):
                continue
            jobs.append((f"{arm}/seed{seed} scf", cmd, rd))
    if jobs:
        print(f"[arms] SCF from {len(jobs)} model(s) and from minao", flush=True)
        launch(jobs, os.cpu_count() or 1, log_file=SCF_LOG)


def _scf_done(rd: Path) -> int:
    """Molecules already in the run's ``scf_test.json`` (scf_speedup.py skips them anyway)."""
    try:
        return len(json.loads((rd / SCF_FILE).read_text()).get("molecules", {}))
    except (OSError, ValueError):
        return 0


# ---- summary -------------------------------------------------------------------------------------


def mean_sd(values) -> dict:
    """``{"mean", "sd" (sample, ddof 1; None below two values), "n"}`` of the non-None values."""
    v = [float(x) for x in values if x is not None]
    return {"mean": statistics.fmean(v) if v else None, "sd": statistics.stdev(v) if len(v) > 1 else None,
            "n": len(v)}


def _float(text) -> Optional[float]:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if x == x else None  # NaN -> None


def parameter_count(rd: Path) -> Optional[int]:
    """Parameters of the run's ``best.pt`` model (None without one)."""
    from hamnet.train.checkpoint import load_checkpoint_model

    best = rd / "best.pt"
    if not best.is_file():
        return None
    model, _ = load_checkpoint_model(best)
    return int(model.num_parameters())


def run_row(rd: Path) -> dict:
    """What one run directory holds: status, test metrics, steps, speed, parameters, diag_*, SCF."""
    from hamnet.plots import read_metrics_csv

    row = {"run_dir": str(rd), "status": "missing", "values": {}, "diag": {}}
    vals = row["values"]
    try:
        doc = json.loads((rd / DONE_FILE).read_text())
    except (OSError, ValueError):
        doc = None
        row["status"] = "incomplete" if (rd / "last.pt").is_file() else "missing"
    if doc is not None:
        row["status"] = "done"
        units = doc.get("units", {})
        for k, v in doc.get("metrics", {}).items():
            vals[f"test_{k}_{units.get(k, '')}".rstrip("_")] = _float(v)
        for k, v in ((doc.get("baseline") or {}).get("metrics") or {}).items():
            vals[f"baseline_{k}_{units.get(k, '')}".rstrip("_")] = _float(v)
        row["n_test"], row["best_step"] = doc.get("n_molecules"), doc.get("step")
    rows = read_metrics_csv(rd)
    if rows:
        vals["steps"] = _float(rows[-1].get("step"))
        vals["train_minutes"] = (_float(rows[-1].get("elapsed_s")) or 0.0) / 60
        vals["structures_per_s"] = mean_sd(_float(r.get("structures_per_s")) for r in rows)["mean"]
        for col in rows[0]:
            if col and col.startswith("diag_"):
                last = [x for x in (_float(r.get(col)) for r in rows) if x is not None]
                row["diag"][col] = last[-1] if last else None
        row["curve"] = {"minutes": [(_float(r.get("elapsed_s")) or 0.0) / 60 for r in rows],
                        "val_H_mae_uHa": [_float(r.get("val_H_mae_uHa")) for r in rows]}
    try:
        vals["params"] = parameter_count(rd)
    except Exception as exc:  # a truncated best.pt (or one of other code) must not lose the whole summary
        row["params_error"] = f"{type(exc).__name__}: {exc}"
        vals["params"] = None
    try:
        scf = json.loads((rd / SCF_FILE).read_text()).get("summary") or {}
    except (OSError, ValueError):
        scf = {}
    if scf:
        model_name = list(scf["cycles"])[-1]
        vals["scf_cycles_model"] = scf["cycles"][model_name]
        vals["scf_cycles_minao"] = scf["cycles"].get("minao")
        vals["scf_ratio"] = scf.get("achieved", {}).get("minao")
        if scf.get("n_molecules"):  # the share of molecules where the guard used minao instead of the model
            vals["scf_fallback_share"] = scf.get("guard_fallbacks", 0) / scf["n_molecules"]
        row["scf_molecules"] = scf.get("n_molecules")
        row["scf_ok"] = bool(scf.get("all_energy_ok") and scf.get("all_converged"))
    return row


def summarize(out, arms: dict, seeds: list, plan: Optional[dict] = None) -> dict:
    """Per-run rows and per-arm mean ± sample sd over the seeds of every numeric value.

    ``arms`` is ``{name: overrides}``; reads ``OUT/ARM/seedS`` (``eval_test.json``,
    ``metrics.csv``, ``best.pt``, ``scf_test.json``), writes nothing.
    """
    out = Path(out)
    runs, per_arm, missing = [], {}, []
    for arm, overrides in arms.items():
        rows = []
        for seed in seeds:
            row = {"arm": arm, "seed": seed, **run_row(run_dir(out, arm, seed))}
            rows.append(row)
            if row["status"] != "done":
                missing.append(f"{arm}/seed{seed} ({row['status']})")
        done = [r for r in rows if r["status"] == "done"]
        keys = list(dict.fromkeys(k for r in done for k in r["values"]))
        diag = list(dict.fromkeys(k for r in done for k in r["diag"]))
        per_arm[arm] = {
            "overrides": list(overrides), "seeds": [r["seed"] for r in done],
            "missing_seeds": [r["seed"] for r in rows if r["status"] != "done"],
            "stats": {k: mean_sd(r["values"].get(k) for r in done) for k in keys},
            "diag": {k: mean_sd(r["diag"].get(k) for r in done) for k in diag},
        }
        runs += rows
    return {"out": str(out), "plan": plan, "arms": per_arm, "missing": missing,
            "runs": [{k: v for k, v in r.items() if k != "curve"} for r in runs],
            "_curves": {f"{r['arm']}/seed{r['seed']}": r.get("curve") for r in runs}}


def _cell(s: Optional[dict], digits: int) -> str:
    if not s or s["mean"] is None:
        return "-"
    m = f"{s['mean']:,.{digits}f}"
    return m if s["sd"] is None else f"{m} ± {s['sd']:,.{digits}f}"


_DIGITS = {"params": 0, "steps": 0, "structures_per_s": 2, "test_psi_cos_%": 2, "scf_cycles_model": 2,
           "scf_cycles_minao": 2, "scf_ratio": 3, "scf_fallback_share": 2}


def format_markdown(summary: dict) -> str:
    """The per-arm table (mean ± sample sd over seeds), a baseline line, then the per-run table."""
    arms = summary["arms"]
    has_scf = any("scf_ratio" in a["stats"] for a in arms.values())
    diag = list(dict.fromkeys(k for a in arms.values() for k in a["diag"]))
    cols = list(TABLE) + (list(SCF_TABLE) if has_scf else []) + [(k, k) for k in diag]
    digits = lambda k: _DIGITS.get(k, 4 if k.startswith("diag_") else 1)  # noqa: E731
    out = ["| arm | seeds | " + " | ".join(h for _, h in cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for name, a in arms.items():
        stat = lambda k: a["diag"].get(k) if k.startswith("diag_") else a["stats"].get(k)  # noqa: E731
        seeds = ",".join(map(str, a["seeds"])) or "none"
        out.append(f"| {name} | {seeds} | " + " | ".join(_cell(stat(k), digits(k)) for k, _ in cols) + " |")
    plan = summary.get("plan") or {}
    out += ["", "mean ± sample standard deviation over seeds; arms: "
            + "; ".join(f"{n} = `{' '.join(a['overrides'])}`" for n, a in arms.items())]
    if plan:
        budget = (f"{_minutes(plan)} of training each" if plan.get("minutes") is not None
                  else f"{plan.get('steps')} steps each")
        n, at_once = plan.get("n_runs"), plan.get("max_parallel") or plan.get("n_runs")
        together = "side by side" if at_once == n else f"{at_once} at a time"
        out.append(f"config `{plan.get('config')}`, {budget}, {n} run(s) {together} on "
                   f"{plan['machine']['cpu_count']} cores (1 thread each), torch {plan['machine']['torch']}"
                   + (f", global `{' '.join(plan['global_sets'])}`" if plan.get("global_sets") else ""))
    base = mean_sd(r["values"].get("baseline_H_mae_uHa") for r in summary["runs"] if r["status"] == "done")
    if base["mean"] is not None:
        out.append(f"baseline (every block = its training mean, no network): test H MAE {_cell(base, 1)} µHa")
    if summary["missing"]:
        out.append(f"missing: {', '.join(summary['missing'])}")
    keys = [k for k, _ in cols if not k.startswith("diag_")]
    out += ["", "| arm | seed | status | " + " | ".join(h for _, h in cols) + " |",
            "|---|---:|---|" + "---:|" * len(cols)]
    for r in summary["runs"]:
        cells = [_cell({"mean": r["values"].get(k), "sd": None}, digits(k)) for k in keys]
        cells += [_cell({"mean": r["diag"].get(k), "sd": None}, digits(k)) for k in diag]
        out.append(f"| {r['arm']} | {r['seed']} | {r['status']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def curves_figure(summary: dict):
    """Validation MAE of H against training minutes: a colour per arm, a line per seed (log y).
    Returns ``(figure, data)``, ``data`` mapping ``ARM/seedS`` to the drawn ``(x, y)``."""
    import numpy as np
    from matplotlib.lines import Line2D

    from hamnet.plots import _figure

    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    data, handles = {}, []
    for i, (name, a) in enumerate(summary["arms"].items()):
        color = f"C{i % 10}"
        label = textwrap.fill(f"{name}: {' '.join(a['overrides'])}", LEGEND_WIDTH, subsequent_indent="    ")
        handles.append(Line2D([], [], color=color, lw=1.5, label=label))
        for key, curve in summary["_curves"].items():
            if not key.startswith(f"{name}/") or not curve:
                continue
            x, y = np.asarray(curve["minutes"], float), np.asarray(
                [np.nan if v is None else v for v in curve["val_H_mae_uHa"]], float)
            ok = np.isfinite(y) & (y > 0)
            if ok.any():
                ax.plot(x[ok], y[ok], color=color, lw=1.2, marker="o", ms=2.5, alpha=0.85)
                data[key] = (x[ok], y[ok])
    ax.set_yscale("log")
    plan = summary.get("plan") or {}
    ax.set_xlabel(f"training {'CPU' if plan.get('clock') == 'cpu' else 'wall'} time (min)")
    ax.set_ylabel("val MAE of H (µHa)")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    budget = (f", {_minutes(plan)} each" if plan.get("minutes") is not None else
              f", {plan['steps']} steps each" if plan.get("steps") else "")
    ax.set_title(f"{Path(str(plan.get('config', ''))).name or 'arms'}{budget}: a colour per arm, a line per seed",
                 fontsize="medium")
    wide = any(len(h.get_label()) > LEGEND_WIDTH // 2 for h in handles)  # long labels: one column
    fig.legend(handles=handles, loc="outside lower center", ncols=1 if wide else min(len(handles), 2),
               fontsize="small")
    return fig, data


def write_summary(out, arms: dict, seeds: list, plan: Optional[dict] = None) -> dict:
    """``summary.json``, ``summary.md`` and ``learning_curves.png`` in ``out``; returns the summary."""
    from hamnet.plots import save_png

    out = Path(out)
    s = summarize(out, arms, seeds, plan)
    atomic_write_text(out / SUMMARY_JSON,
                      json.dumps({k: v for k, v in s.items() if k != "_curves"}, indent=1) + "\n")
    md = format_markdown(s)
    atomic_write_text(out / SUMMARY_MD, md)
    if any(s["_curves"].values()):
        fig, _ = curves_figure(s)
        save_png(fig, out / CURVES_PNG)
    return s


# ---- driver --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="run config (YAML) shared by every arm")
    p.add_argument("--out", required=True, help="folder of the comparison: OUT/ARM/seedS, summary files")
    p.add_argument("--arm", nargs="+", action="append", metavar=("NAME", "OVERRIDES"),
                   help="an arm: NAME and its 'KEY=VALUE KEY=VALUE' hamnet train overrides (repeatable)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds of every arm (default 0; with --summarize-only: "
                   "those of OUT/arms.json)")
    p.add_argument("--minutes", type=float, help="training minutes of every run (limits.max_minutes)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="what --minutes counts: wall time (default) or each run's CPU time (limits.clock)")
    p.add_argument("--steps", type=int,
                   help="optimizer steps of every run (limits.max_steps; without --minutes, no time limit)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="global_sets",
                   help="override applied to every arm (repeatable; before the arm's own)")
    p.add_argument("--scf", action="store_true", help="SCF cycles from each best.pt vs minao on the test part")
    p.add_argument("--scf-molecules", type=int, metavar="N", help="with --scf: the first N test records only")
    p.add_argument("--max-parallel", type=int, help="runs at the same time (default: all)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run and write nothing")
    p.add_argument("--summarize-only", action="store_true",
                   help="train nothing: rebuild the summary from the run directories (arms and seeds from "
                        "OUT/arms.json unless given)")
    return p


def _plan(args, argv: list, arms: dict, global_sets: list, limits: list) -> dict:
    return {"command": shlex.join([sys.executable, str(Path(__file__)), *argv]),
            "cwd": os.getcwd(), "config": str(Path(args.config).resolve()), "arms": arms,
            "global_sets": global_sets, "seeds": list(args.seeds), "minutes": args.minutes,
            "clock": args.clock, "steps": args.steps, "limits": limits, "max_parallel": args.max_parallel,
            "n_runs": len(arms) * len(args.seeds), "thread_env": ONE_THREAD, "machine": machine(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        arms = parse_arms(args.arm)
        global_sets = parse_overrides(args.global_sets, "--set")
        if args.summarize_only:
            plan = json.loads((out / ARMS_FILE).read_text()) if (out / ARMS_FILE).is_file() else None
            if not arms and plan is None:
                raise ArmsError(f"--summarize-only: {out / ARMS_FILE} does not exist; give the --arm options")
            arms = arms or plan["arms"]
            seeds = args.seeds or (plan["seeds"] if plan else [0])
            s = write_summary(out, arms, seeds, plan)
            print(format_markdown(s), end="")
            print(f"wrote {out / SUMMARY_JSON}, {out / SUMMARY_MD}" + (
                f", {out / CURVES_PNG}" if (out / CURVES_PNG).is_file() else ""))
            return 0 if not s["missing"] else 1
        if not args.config:
            raise ArmsError("give the run config (CONFIG.yaml)")
        if not Path(args.config).is_file():
            raise ArmsError(f"no config file at {args.config}")
        if not arms:
            raise ArmsError("give at least one --arm NAME \"KEY=VALUE ...\"")
        if args.minutes is None and args.steps is None:
            raise ArmsError("give the budget of every run: --minutes M (or --steps N)")
        if (args.minutes is not None and args.minutes <= 0) or (args.steps is not None and args.steps < 1):
            raise ArmsError("--minutes and --steps must be positive")
        if args.max_parallel is not None and args.max_parallel < 1:
            raise ArmsError("--max-parallel must be >= 1")
        args.seeds = args.seeds or [0]
        if len(set(args.seeds)) != len(args.seeds):
            raise ArmsError(f"--seeds {' '.join(map(str, args.seeds))}: a seed given twice")
        limits = limit_overrides(args.minutes, args.steps, args.clock)
        cfgs = check_configs(args.config, arms, global_sets, limits, args.seeds)
    except ArmsError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    seeds = list(args.seeds)
    jobs, skipped = [], []
    for arm, items in arms.items():
        for seed in seeds:
            rd = run_dir(out, arm, seed)
            label = f"{arm}/seed{seed}"
            if (rd / DONE_FILE).is_file():
                skipped.append(label)
                continue
            jobs.append((label, train_command(args.config, out, arm, seed, global_sets + items, limits), rd))
    if args.dry_run:
        for label, argv, rd in jobs:
            print(f"{label}: {' '.join(f'{k}={v}' for k, v in ONE_THREAD.items())} {shlex.join(argv)} "
                  f"> {rd / LOG_FILE}")
        for label in skipped:
            print(f"{label}: done ({DONE_FILE} exists), skipped")
        return 0
    try:
        prepare_stores(cfgs)
        write_plan(out, _plan(args, argv, arms, global_sets, limits))
    except ArmsError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except Exception as exc:  # the store cannot be opened or made: as hamnet train would say
        parser.exit(2, f"{parser.prog}: error: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}\n")
    plan = json.loads((out / ARMS_FILE).read_text())
    if skipped:
        print(f"[arms] {len(skipped)} run(s) already done: {', '.join(skipped)}")
    if jobs:
        print(f"[arms] {len(jobs)} run(s) of {len(arms)} arm(s) x {len(seeds)} seed(s), "
              f"{min(args.max_parallel or len(jobs), len(jobs))} at a time, in {out}", flush=True)
    try:
        if jobs:
            launch(jobs, args.max_parallel or len(jobs))
        if args.scf:
            run_scf(out, arms, seeds, args.scf_molecules)
    except KeyboardInterrupt:
        return 130
    s = write_summary(out, arms, seeds, plan)
    print(format_markdown(s), end="")
    print(f"wrote {out / SUMMARY_JSON}, {out / SUMMARY_MD}" + (
        f", {out / CURVES_PNG}" if (out / CURVES_PNG).is_file() else ""))
    return 0 if not s["missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
