"""``RUN/report.md``: one plain-Markdown page about a training run, for a colleague.

It gathers what a run directory already holds, and reads nothing else but the run's
dataset store (for its provenance):

* the training summary and the data provenance (functional, basis, grid, convergence,
  PySCF version, recipe, deviations from the published set, split sizes), from the
  checkpoint and the store's metadata;
* the final metrics of every ``eval_*.json`` (micro-Hartree, percent) and their worst
  molecules (written by ``hamnet eval``);
* the pictures (``learning_curves.png``, ``parity_*.png``) as relative image links;
* the resolved ``config.yaml``.

Plain Markdown (tables, fenced code, relative links): it renders on GitHub and in any
editor, with no server.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Optional

import yaml

from hamnet.errors import HamnetError, MissingFileError

__all__ = ["ReportError", "REPORT_FILE", "build_report", "write_run_report"]

REPORT_FILE = "report.md"


class ReportError(HamnetError, ValueError):
    """The directory is not a hamnet run directory, or one of its files is unreadable."""


def _cell(value) -> str:
    """A value as a Markdown table cell (pipes escaped, newlines flattened)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.1f}" if 1e3 <= abs(value) < 1e9 else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _checkpoint(run_dir: Path) -> dict:
    """The payload of ``best.pt`` (else ``last.pt``), or {} when there is none."""
    from hamnet.train.checkpoint import BEST, LAST, CheckpointError, read_checkpoint

    for name in (BEST, LAST):
        if (run_dir / name).is_file():
            try:
                return read_checkpoint(run_dir / name)
            except CheckpointError as exc:
                raise ReportError(str(exc)) from exc
    return {}


def _evaluations(run_dir: Path) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(run_dir.glob("eval_*.json")):
        try:
            out.append((path.name, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportError(f"{path} is not a readable evaluation JSON: {exc}") from exc
    return out


def _data_section(ck: dict, cfg: dict) -> list[str]:
    ds_info = (ck.get("checkpoint") or {}).get("dataset") or {}
    path = ds_info.get("path") or (cfg.get("data") or {}).get("path")
    lines = ["## Data", ""]
    meta = None
    if path and Path(path).exists():
        from hamnet.data import DatasetError, open_dataset

        try:
            meta = open_dataset(path).metadata
        except DatasetError as exc:
            lines += [f"The store `{path}` cannot be opened ({exc}); what the checkpoint recorded:", ""]
    elif path:
        lines += [f"The store `{path}` is not on this machine; what the checkpoint recorded:", ""]
    rows = [["store", f"`{path}`" if path else None]]
    if meta is not None:
        src = meta.get("source")
        rows += [[k, meta.get(k)] for k in ("recipe", "xc", "xc_definition", "basis", "grid_level", "conv_tol",
                                             "conv_tol_grad", "pyscf_version", "hamnet_version", "count",
                                             "created", "schema_version")]
        rows.append(["source", json.dumps(src, sort_keys=True) if isinstance(src, dict) else src])
        rows.append(["units", json.dumps(meta.get("units"), sort_keys=True)])
    else:
        rows += [[k, ds_info.get(k)] for k in ("recipe", "xc", "basis", "count")]
    parts = ds_info.get("parts") or {}
    if parts:
        sizes = ", ".join(f"{p} {len(v)}" for p, v in parts.items())
        rows.append(["split", f"{ds_info.get('split')}: {sizes} structures"])
    lines += _table(["", ""], [r for r in rows if r[1] is not None])
    if meta is not None:
        for key, title in (("provenance", "Provenance"), ("deviations", "Deviations from the published set")):
            if meta.get(key):
                lines += ["", f"**{title}.** {meta[key]}"]
    return lines + [""]


def _training_section(run_dir: Path, ck: dict, cfg: dict, link) -> list[str]:
    from hamnet.plots import LEARNING_CURVES, read_metrics_csv

    info = ck.get("checkpoint") or {}
    rows = read_metrics_csv(run_dir)
    lines = ["## Training", ""]
    model = cfg.get("model") or {}
    facts = [
        ["model", f"backbone {model.get('backbone', 'equivariant')}, tracegrad {model.get('tracegrad')}"],
        ["basis / xc / elements", f"{ck.get('basis')} / {ck.get('xc')} / {ck.get('elements')}"],
        ["hamnet (checkpoint)", ck.get("hamnet_version")],
        ["steps (epochs)", f"{info.get('step')} ({info.get('epoch')})" if info else None],
        ["training time", f"{info['elapsed_s'] / 60:.2f} min" if info.get("elapsed_s") is not None else None],
        ["structures seen", info.get("samples")],
        ["validations (metrics.csv rows)", len(rows)],
    ]
    best = info.get("best") or {}
    if best.get("value") is not None:
        facts.append(["best validation", f"{best['metric']} = {best['value']:.6g} at step {best['step']} (best.pt)"])
    lines += _table(["", ""], [f for f in facts if f[1] is not None])
    if rows:
        last = rows[-1]
        cols = [c for c in last if c.startswith("val_") and last[c] not in ("", None)]
        if cols:
            lines += ["", f"Last validation (step {last['step']}):", ""]
            lines += _table(["metric", "value"], [[c[4:], last[c]] for c in cols])
    if (run_dir / LEARNING_CURVES).is_file():
        lines += ["", f"![learning curves: train loss, validation MAE of H and of the occupied orbital energies, "
                      f"learning rate]({link(run_dir / LEARNING_CURVES)})"]
    return lines + [""]


def _metrics_section(run_dir: Path, evals: list[tuple[str, dict]], link) -> list[str]:
    lines = ["## Final metrics", ""]
    if not evals:
        return lines + ["No `eval_*.json` in the run directory; `hamnet eval RUN` writes one.", ""]
    keys = list(dict.fromkeys(k for _, doc in evals for k in doc.get("metrics", {})))
    units = {k: u for _, doc in evals for k, u in doc.get("units", {}).items()}
    header = ["metric"] + [f"{name} ({doc.get('n_molecules')} mol)" for name, doc in evals]
    body = [[f"{k} ({units.get(k, '')})"] + [doc.get("metrics", {}).get(k) for _, doc in evals] for k in keys]
    lines += _table(header, body)
    lines.append("")
    for name, doc in evals:
        src = doc.get("checkpoint") or doc.get("source")
        lines.append(f"- `{name}`: {src} on `{doc.get('data')}`, split {doc.get('split')}"
                     + (f"/{doc['part']}" if doc.get("part") else ""))
    lines.append("")
    for name, doc in evals:
        img = doc.get("parity_plot")
        if img and (run_dir / img).is_file():
            lines += [f"![parity plot of {name}: predicted against reference entries and occupied orbital "
                      f"energies, per-molecule MAE]({link(run_dir / img)})", ""]
    return lines


def _worst_section(evals: list[tuple[str, dict]]) -> list[str]:
    lines = ["## Worst molecules", ""]
    found = [(name, doc["worst_molecules"]) for name, doc in evals if doc.get("worst_molecules")]
    if not found:
        return lines + ["No evaluation lists them yet; `hamnet eval RUN` does.", ""]
    for name, worst in found:
        lines += [f"`{name}`, largest MAE of H first:", ""]
        lines += _table(["record", "source id", "MAE of H (uHa)", "diagonal (uHa)", "off-diagonal (uHa)",
                         "eps_occ MAE (uHa)"],
                        [[m.get("index"), m.get("source_id"), m.get("H_mae_uHa"), m.get("H_diag_mae_uHa"),
                          m.get("H_offdiag_mae_uHa"), m.get("eps_occ_mae_uHa")] for m in worst])
        lines.append("")
    return lines


def build_report(run_dir, out=None) -> str:
    """The Markdown text of the report of ``run_dir`` (image links relative to ``out``'s folder)."""
    import hamnet

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise MissingFileError(f"no run directory at {run_dir}")
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a directory; give a hamnet run directory")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file() and not any((run_dir / n).is_file() for n in ("best.pt", "last.pt", "metrics.csv")):
        raise ReportError(f"{run_dir} is not a hamnet run directory (no config.yaml, metrics.csv or checkpoint)")
    try:
        cfg_text = cfg_path.read_text() if cfg_path.is_file() else ""
        cfg = yaml.safe_load(cfg_text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{cfg_path} cannot be read: {exc}") from exc
    base = Path(out).parent if out is not None else run_dir

    def link(path: Path) -> str:
        return Path(os.path.relpath(path, base)).as_posix()

    ck = _checkpoint(run_dir)
    evals = _evaluations(run_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# hamnet run `{run_dir.resolve().name}`", "",
             f"Written {now} by `hamnet report` (hamnet {hamnet.__version__}) from `{run_dir}`. "
             "Errors in micro-Hartree (uHa), psi_cos in percent, matrices in Hartree, PySCF AO order.", ""]
    lines += _metrics_section(run_dir, evals, link)
    lines += _worst_section(evals)
    lines += _training_section(run_dir, ck, cfg, link)
    lines += _data_section(ck, cfg)
    lines += ["## Config", "", f"`{cfg_path.name}`, every default filled in:", "", "```yaml",
              cfg_text.rstrip() or "# (no config.yaml in the run directory)", "```", ""]
    return "\n".join(lines)


def write_run_report(run_dir, out: Optional[str] = None) -> Path:
    """Write ``RUN/report.md`` (or ``out``) atomically; returns its path."""
    run_dir = Path(run_dir)
    path = Path(out) if out is not None else run_dir / REPORT_FILE
    text = build_report(run_dir, path)
    from hamnet.atomic import atomic_write_text

    try:
        return atomic_write_text(path, text)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc
