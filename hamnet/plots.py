"""Pictures of runs, evaluations and benchmarks: PNG files drawn with matplotlib's Agg.

Every figure is a :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot, no
display, no global state), laid out with constrained layout so labels do not overlap,
and written atomically (:func:`hamnet.atomic.atomic_write`).
matplotlib is imported inside the functions, so ``import hamnet`` stays light.

Units: errors in micro-Hartree (uHa), matrix entries and orbital energies in Hartree.
Each ``*_figure`` function returns ``(figure, data)``, ``data`` holding the arrays and
the numbers it drew, so tests can check that a picture shows what the JSON says.

* :func:`write_learning_curves` - ``RUN/learning_curves.png`` from ``RUN/metrics.csv``;
* :class:`ParityCollector` + :func:`write_parity` - ``parity_<split>.png`` of ``hamnet eval``;
* :func:`write_scf_chart` - cycles and wall time per SCF guess (``benchmarks/scf_speedup.py``);
* :func:`write_symmetry_chart` - equivariance error and cost against averaging rotations
  (``benchmarks/symmetry_benchmark.py``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "UHA_PER_HA",
    "save_png",
    "learning_curves_figure",
    "write_learning_curves",
    "ParityCollector",
    "parity_figure",
    "parity_path",
    "write_parity",
    "write_eval_parity",
    "describe_model",
    "fmt_uha",
    "read_metrics_csv",
    "run_labels",
    "scf_figure",
    "write_scf_chart",
    "symmetry_figure",
    "write_symmetry_chart",
]

UHA_PER_HA = 1e6  # micro-Hartree per Hartree (a unit prefix, not a physical constant)
DPI = 100
LEARNING_CURVES = "learning_curves.png"


# ---- figures and files -------------------------------------------------------------------


def _figure(width: float, height: float):
    """A constrained-layout Figure on an Agg canvas (matplotlib imported here, lazily)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically (temporary file in the same directory)."""
    from hamnet.atomic import atomic_write

    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))


def _log_if_wide(ax, values, axis: str = "y", decades: float = 1.0) -> None:
    """Log scale on ``axis`` when the positive finite ``values`` span more than ``decades``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size and (v > 0).all() and np.log10(v.max() / v.min()) > decades:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _identity_line(ax, x, y):
    lo = float(min(np.min(x), np.min(y)))
    hi = float(max(np.max(x), np.max(y)))
    pad = 0.02 * (hi - lo or 1.0)
    return ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", lw=0.8, color="0.3",
                   label="prediction = reference")[0]


# ---- learning curves --------------------------------------------------------------------

# (metrics.csv column, legend label, panel)
_CURVES = (
    ("train_loss", "train loss (MAE + MSE, Ha-based)", 0),
    ("val_H_mae_uHa", "val MAE of H, all entries", 1),
    ("val_H_diag_mae_uHa", "val MAE of H, diagonal blocks", 1),
    ("val_H_offdiag_mae_uHa", "val MAE of H, off-diagonal blocks", 1),
    ("val_eps_occ_mae_uHa", "val MAE of occupied orbital energies", 2),
    ("lr", "learning rate", 3),
)
_PANEL_Y = ("train loss", "val MAE of H (µHa)", r"val MAE of $\varepsilon_\mathrm{occ}$ (µHa)", "learning rate")


def fmt_uha(value: float) -> str:
    """A micro-Hartree value for a title: 4 significant digits, no exponent below 1e7."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _wall_unit(seconds: np.ndarray) -> tuple[float, str]:
    """Divisor and name of a readable unit for a span of wall time in seconds."""
    span = float(np.nanmax(seconds)) if np.isfinite(seconds).any() else 0.0
    if span < 120:
        return 1.0, "s"
    return (60.0, "min") if span < 7200 else (3600.0, "h")


def _column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key, "") or "nan"))
        except ValueError:
            out.append(float("nan"))
    return np.asarray(out, dtype=float)


def read_metrics_csv(run_dir) -> list[dict]:
    """Rows of ``RUN/metrics.csv`` as dicts of strings (oldest first), [] if absent."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def run_labels(run_dir) -> tuple[str, str]:
    """``(model, data)`` legend labels of a run, from its ``config.yaml``."""
    import yaml

    run_dir = Path(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    model = cfg.get("model") or {}
    from hamnet.nn.config import DEFAULT_BACKBONE

    backbone = model.get("backbone", DEFAULT_BACKBONE)
    tg = " + TraceGrad" if model.get("tracegrad", True) and backbone != "pet" else ""
    model_label = f"{backbone}{tg} ({run_dir.resolve().name}/)"
    data = cfg.get("data") or {}
    if data.get("path"):
        store = Path(data["path"])
    elif data.get("recipe"):
        store = Path(data.get("root") or "data") / f"{data['recipe']}-{data.get('n')}"
    else:
        store = None
    data_label = store.name if store is not None else "unknown data"
    if store is not None and store.exists():
        from hamnet.data import DatasetError, open_dataset
        from hamnet.data import keys as DK

        try:
            meta = open_dataset(store).metadata
            data_label += (f" ({meta.get(DK.META_RECIPE)}, {meta.get(DK.META_XC)}/{meta.get(DK.META_BASIS)}, "
                           f"{meta.get(DK.META_COUNT)} structures)")
        except DatasetError:
            pass
    split = (cfg.get("split") or {}).get("name")
    if split:
        data_label += f", split {split}"
    return model_label, data_label


def learning_curves_figure(rows: Sequence[Mapping], model_label: str, data_label: str):
    """Train loss, val MAE of H and of eps_occ, learning rate against step and wall time.

    ``rows`` are ``metrics.csv`` rows. Returns ``(figure, data)``; ``data`` maps each
    plotted column name (and ``step``; ``wall``, training time in ``wall_unit``) to the array drawn.
    """
    elapsed = _column(rows, "elapsed_s")
    div, unit = _wall_unit(elapsed)
    data = {"step": _column(rows, "step"), "wall": elapsed / div, "wall_unit": unit}
    for key, _, _ in _CURVES:
        data[key] = _column(rows, key)
    fig = _figure(10, 10)
    axes = fig.subplots(4, 2, sharex="col")
    colors = {"val_H_mae_uHa": "C0", "val_H_diag_mae_uHa": "C1", "val_H_offdiag_mae_uHa": "C2",
              "train_loss": "C3", "val_eps_occ_mae_uHa": "C4", "lr": "C5"}
    handles = {}
    for col, xkey in enumerate(("step", "wall")):
        for key, label, panel in _CURVES:
            y = data[key]
            if not np.isfinite(y).any():
                continue
            ax = axes[panel, col]
            (line,) = ax.plot(data[xkey], y, marker="o", ms=3, lw=1.2, color=colors[key], label=label)
            handles.setdefault(key, line)
        for panel in range(4):
            ax = axes[panel, col]
            ys = [data[k] for k, _, p in _CURVES if p == panel]
            _log_if_wide(ax, np.concatenate(ys))
            ax.grid(alpha=0.3, which="both", lw=0.5)
            if col == 0:
                ax.set_ylabel(_PANEL_Y[panel])
        axes[-1, col].set_xlabel("optimizer step" if xkey == "step" else f"training wall time ({unit})")
        from matplotlib.ticker import MaxNLocator

        axes[-1, col].xaxis.set_major_locator(MaxNLocator(6, integer=xkey == "step"))
    axes[0, 0].set_title("against step")
    axes[0, 1].set_title("against training wall time")
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncols=2, fontsize="small",
               title=f"model: {model_label}   |   data: {data_label}", title_fontsize="small")
    return fig, data


def write_learning_curves(run_dir, path=None) -> Optional[Path]:
    """Draw ``RUN/learning_curves.png`` from ``RUN/metrics.csv`` (None when it has no rows)."""
    run_dir = Path(run_dir)
    rows = read_metrics_csv(run_dir)
    if not rows:
        return None
    fig, _ = learning_curves_figure(rows, *run_labels(run_dir))
    return save_png(fig, path or run_dir / LEARNING_CURVES)


# ---- parity plots of an evaluation ---------------------------------------------------------


class _Thinned:
    """Pairs of 1-d arrays kept up to ``cap`` points: past it, every other point is dropped
    and later arrays are taken with the doubled stride (a uniform, deterministic thinning)."""

    def __init__(self, cap: int):
        self.cap, self.stride, self.total = int(cap), 1, 0
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, ref: np.ndarray, pred: np.ndarray) -> None:
        self.total += ref.size
        self.parts.append((ref[:: self.stride], pred[:: self.stride]))
        while sum(p[0].size for p in self.parts) > self.cap:
            self.parts = [(r[::2], p[::2]) for r, p in self.parts]
            self.stride *= 2

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.parts:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([r for r, _ in self.parts]), np.concatenate([p for _, p in self.parts])


class ParityCollector:
    """What a parity plot needs, gathered molecule by molecule during an evaluation.

    Pass :meth:`add` as ``on_molecule`` to :func:`hamnet.train.evaluate.score` (or
    ``evaluate_model`` / ``evaluate_predictions``). Per molecule it keeps the MAE of H
    over all entries, the diagonal (same-atom) and off-diagonal blocks and of the occupied
    orbital energies, computed here from the full matrices; for display it keeps the
    matrix entries of the upper triangle (Hartree) and the occupied orbital energies
    (Hartree), thinned uniformly past ``max_points`` per panel.
    """

    def __init__(self, max_points: int = 200_000, n_worst: int = 5):
        self.n_worst = int(n_worst)
        self.molecules: list[dict] = []
        self.diag, self.offdiag, self.eps = _Thinned(max_points), _Thinned(max_points), _Thinned(max_points)

    def add(self, index: int, rec: Mapping, F_pred: np.ndarray, S: np.ndarray, ao_atom, nocc: int,
            metrics: Optional[Mapping] = None) -> None:
        """One scored molecule: record ``index``, its record ``rec`` (reference ``F``),
        ``F_pred`` and overlap ``S`` ``(nao, nao)``, ``ao_atom`` ``(nao,)``, ``nocc``."""
        from hamnet.data import keys as DK
        from hamnet.metrics import orbitals

        F_ref = np.asarray(rec[DK.F], dtype=np.float64)
        F_pred = np.asarray(F_pred, dtype=np.float64)
        ao_atom = np.asarray(ao_atom)
        err = np.abs(F_pred - F_ref)
        same = ao_atom[:, None] == ao_atom[None, :]  # [nao, nao] same-atom (diagonal) blocks
        eps, _ = orbitals(np.stack([F_pred, F_ref]), np.stack([S, S]))  # [2, nao] Hartree
        e_pred, e_ref = eps[0, :nocc], eps[1, :nocc]
        upper = np.triu(np.ones_like(same))
        self.diag.add(F_ref[same & upper], F_pred[same & upper])
        self.offdiag.add(F_ref[~same & upper], F_pred[~same & upper])
        self.eps.add(e_ref, e_pred)
        self.molecules.append({
            "index": int(index),
            "source_id": str(rec.get(DK.SOURCE_ID, "")),
            "H_mae_uHa": float(err.mean()) * UHA_PER_HA,
            "H_diag_mae_uHa": float(err[same].mean()) * UHA_PER_HA,
            "H_offdiag_mae_uHa": float(err[~same].mean()) * UHA_PER_HA if (~same).any() else float("nan"),
            "eps_occ_mae_uHa": float(np.abs(e_pred - e_ref).mean()) * UHA_PER_HA,
        })

    def mae(self) -> dict[str, float]:
        """Equal-weight means over molecules (micro-Hartree), QH9's definition."""
        keys = ("H_mae", "H_diag_mae", "H_offdiag_mae", "eps_occ_mae")
        return {k: float(np.mean([m[f"{k}_uHa"] for m in self.molecules])) for k in keys}

    def worst(self, n: Optional[int] = None) -> list[dict]:
        """The ``n`` molecules with the largest MAE of H, worst first."""
        n = self.n_worst if n is None else n
        return sorted(self.molecules, key=lambda m: -m["H_mae_uHa"])[:n]


_WORST_COLORS = ("C3", "C1", "C4", "C6", "C9", "C2", "C5", "C8")


def _hexbin(fig, ax, ref, pred, title, thinned: _Thinned):
    hb = ax.hexbin(ref, pred, gridsize=45, bins="log", mincnt=1, cmap="viridis", linewidths=0)
    line = _identity_line(ax, ref, pred)
    ax.set_title(title)
    ax.set_xlabel("reference entry (Ha)")
    ax.set_ylabel("predicted entry (Ha)")
    shown = f"{ref.size:,} of {thinned.total:,}" if thinned.stride > 1 else f"{ref.size:,}"
    fig.colorbar(hb, ax=ax, label=f"entries per bin (log), {shown} entries")
    return line


def parity_figure(collector: ParityCollector, model_label: str, data_label: str):
    """Predicted against reference entries (diagonal and off-diagonal blocks, log-density
    hexbins), occupied orbital energies, and the histogram of per-molecule MAE of H with
    the worst molecules marked. Returns ``(figure, data)``: the arrays and the MAE drawn."""
    if not collector.molecules:
        raise ValueError("no molecules were collected; nothing to plot")
    mae = collector.mae()
    d_ref, d_pred = collector.diag.arrays()
    o_ref, o_pred = collector.offdiag.arrays()
    e_ref, e_pred = collector.eps.arrays()
    per_mol = np.array([m["H_mae_uHa"] for m in collector.molecules])
    worst = collector.worst()
    titles = {
        "diag": f"diagonal (same-atom) blocks\nMAE {fmt_uha(mae['H_diag_mae'])} µHa",
        "offdiag": f"off-diagonal blocks\nMAE {fmt_uha(mae['H_offdiag_mae'])} µHa",
        "eps_occ": f"occupied orbital energies\nMAE {fmt_uha(mae['eps_occ_mae'])} µHa",
        "hist": f"MAE of H per molecule ({per_mol.size} molecules)\nmean {fmt_uha(mae['H_mae'])} µHa",
    }
    fig = _figure(10.5, 9)
    axes = fig.subplots(2, 2)
    line = _hexbin(fig, axes[0, 0], d_ref, d_pred, titles["diag"], collector.diag)
    if o_ref.size:
        _hexbin(fig, axes[0, 1], o_ref, o_pred, titles["offdiag"], collector.offdiag)
    else:
        axes[0, 1].set_title("off-diagonal blocks\n(single atoms only: none)")
        axes[0, 1].set_axis_off()
    ax = axes[1, 0]
    ax.scatter(e_ref, e_pred, s=6, alpha=0.5, color="C0", linewidths=0)
    _identity_line(ax, e_ref, e_pred)
    ax.set_title(titles["eps_occ"])
    valence = e_ref > -3.0  # Hartree; core levels stretch the axes, so zoom in on the valence levels
    if valence.any() and e_ref.min() < -5.0:
        ins = ax.inset_axes([0.17, 0.5, 0.4, 0.4])
        ins.scatter(e_ref[valence], e_pred[valence], s=5, alpha=0.5, color="C0", linewidths=0)
        _identity_line(ins, e_ref[valence], e_pred[valence])
        ins.set_title(r"$\varepsilon_\mathrm{ref} > -3$ Ha", fontsize="x-small")
        ins.tick_params(labelsize="x-small")
    ax.set_xlabel(r"reference $\varepsilon$ (Ha)")
    ax.set_ylabel(r"predicted $\varepsilon$ (Ha)")
    ax = axes[1, 1]
    positive = per_mol[per_mol > 0]
    wide = positive.size == per_mol.size and positive.size > 1 and positive.max() / positive.min() > 10
    bins = np.geomspace(per_mol.min(), per_mol.max(), 30) if wide else 30
    counts, _, _ = ax.hist(per_mol, bins=bins, color="0.6", edgecolor="0.3", lw=0.5)
    if wide:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^3, 3x10^3, ... labels would collide
    ax.set_ylim(0, 1.9 * max(counts.max(), 1))  # room for the legend above the bars and markers
    for k, m in enumerate(worst):
        sid = f" {m['source_id']}" if m["source_id"] else ""
        label = f"#{m['index']}{sid}: {fmt_uha(m['H_mae_uHa'])} µHa"
        ax.vlines(m["H_mae_uHa"], 0, 1.15 * counts.max(), color=_WORST_COLORS[k % len(_WORST_COLORS)], lw=1.5,
                  label=label)
    ax.legend(title="worst molecules (record, id: MAE of H)", fontsize="x-small", title_fontsize="x-small",
              loc="upper right")
    ax.set_title(titles["hist"])
    ax.set_xlabel("MAE of H per molecule (µHa)")
    ax.set_ylabel("molecules")
    fig.legend(handles=[line], loc="outside lower center", fontsize="small",
               title=f"model: {model_label}   |   data: {data_label}", title_fontsize="small")
    data = {"diag": (d_ref, d_pred), "offdiag": (o_ref, o_pred), "eps_occ": (e_ref, e_pred),
            "per_molecule_H_mae_uHa": per_mol, "mae_uHa": mae, "worst": worst, "titles": titles}
    return fig, data


def parity_path(json_path) -> Path:
    """Where the parity plot of an evaluation JSON goes: ``eval_X.json`` -> ``parity_X.png``
    (``P.eval_X.json`` -> ``P.parity_X.png``; any other ``N.json`` -> ``N.parity.png``)."""
    p = Path(json_path)
    name = p.name[:-5] if p.name.endswith(".json") else p.name
    head, sep, tail = name.rpartition("eval_")
    if sep and (head == "" or head.endswith(".")):
        return p.with_name(f"{head}parity_{tail}.png")
    return p.with_name(f"{name}.parity.png")


def describe_model(model, source) -> str:
    """Legend label of an evaluated model (backbone, TraceGrad, averaging, file)."""
    inner = getattr(model, "model", model)
    backbone = getattr(inner, "backbone", "model")
    tg = " + TraceGrad" if getattr(inner, "tracegrad", False) else ""
    avg = f", averaged over {model.n_rotations} rotations" if hasattr(model, "n_rotations") else ""
    src = Path(source)
    return f"{backbone}{tg}{avg} ({src.parent.name}/{src.name})"


def write_parity(collector: ParityCollector, json_path, model_label: str, data_label: str) -> dict:
    """Draw the parity plot beside ``json_path`` (see :func:`parity_path`).

    Returns what goes into the evaluation JSON: ``parity_plot`` (file name) and
    ``worst_molecules`` (record index, source id and MAE of H / eps_occ in uHa).
    """
    fig, data = parity_figure(collector, model_label, data_label)
    path = save_png(fig, parity_path(json_path))
    return {"parity_plot": path.name, "worst_molecules": data["worst"]}


def write_eval_parity(collector: ParityCollector, json_path, source, ds, split: str, model=None) -> dict:
    """:func:`write_parity` for ``hamnet eval``: legend labels from the evaluated ``model``
    (None for a prediction file ``source``) and the store ``ds``; returns the JSON entries."""
    from hamnet.data import keys as DK

    model_label = describe_model(model, source) if model is not None else f"predictions {Path(source).name}"
    meta = ds.metadata
    data_label = (f"{Path(ds.path).name} ({meta.get(DK.META_RECIPE)}, {meta.get(DK.META_XC)}/"
                  f"{meta.get(DK.META_BASIS)}), {split}, {len(collector.molecules)} molecules")
    return write_parity(collector, json_path, model_label, data_label)


# ---- SCF benchmark ---------------------------------------------------------------------


def scf_figure(res: Mapping, model_label: str, data_label: str):
    """Mean SCF cycles and wall time per guess, and hamnet's cycles against minao's per molecule.

    ``res`` is the results document of ``benchmarks/scf_speedup.py``. Returns
    ``(figure, data)``: ``names``, ``cycles``, ``wall_s`` (means, as in ``res["summary"]``),
    their standard deviations, and the per-molecule ``minao`` / hamnet cycles.
    """
    mols = list(res["molecules"].values())
    if not mols:
        raise ValueError("no molecules in the SCF benchmark results; nothing to plot")
    names = list(mols[0]["runs"])
    hamnet = names[-1]
    cyc = np.array([[m["runs"][g]["cycles"] for g in names] for m in mols], dtype=float)  # [n_mol, n_guess]
    wall = np.array([[m["runs"][g]["wall_s"] for g in names] for m in mols], dtype=float)
    data = {"names": names, "cycles": cyc.mean(0), "cycles_std": cyc.std(0), "wall_s": wall.mean(0),
            "wall_s_std": wall.std(0), "minao_cycles": cyc[:, 0], "hamnet_cycles": cyc[:, -1]}
    fig = _figure(13, 4.6)
    axes = fig.subplots(1, 3)
    colors = ["0.65"] * (len(names) - 1) + ["C3"]
    x = np.arange(len(names))
    for ax, key, ylabel in ((axes[0], "cycles", "mean SCF cycles"), (axes[1], "wall_s", "mean wall time (s)")):
        ax.bar(x, data[key], yerr=data[f"{key}_std"], color=colors, capsize=3, edgecolor="0.2", lw=0.5)
        for xi, v, sd in zip(x, data[key], data[f"{key}_std"]):
            ax.annotate(f"{v:.2f}" if key == "cycles" else f"{v:.3f}", (xi, v + sd), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize="x-small")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} per guess ({len(mols)} molecules; bars: ±1 std)", fontsize="medium")
    ax = axes[2]
    pairs, counts = np.unique(np.stack([cyc[:, 0], cyc[:, -1]], 1), axis=0, return_counts=True)
    ax.scatter(pairs[:, 0], pairs[:, 1], s=20 + 60 * counts / counts.max(), color="C3", alpha=0.7,
                    label=f"{hamnet} vs {names[0]} (marker area ~ molecules)")
    lo, hi = float(cyc[:, [0, -1]].min()) - 1.5, float(cyc[:, [0, -1]].max()) + 1.5
    ax.plot([lo, hi], [lo, hi], ls="--", lw=0.8, color="0.3", label="equal cycles")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"{names[0]} cycles")
    ax.set_ylabel(f"{hamnet} cycles")
    ax.set_title("per molecule", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left")
    fig.legend(handles=[], loc="outside lower center", title=f"model: {model_label}   |   data: {data_label}",
               title_fontsize="small")
    return fig, data


def write_scf_chart(res: Mapping, json_path) -> Path:
    """Draw the SCF chart of ``benchmarks/scf_speedup.py`` results next to ``json_path`` (``.png``)."""
    s = res.get("settings", {})
    model_label = s.get("hamnet", "hamnet")
    if s.get("model"):
        m = Path(s["model"])  # a file (show its run folder too) or a shipped model's name
        model_label += f" ({m.parent.name}/{m.name})" if m.parent.name else f" ({m.name})"
    data = Path(s["data"]).name if s.get("data") else "xyz files"
    if s.get("indices"):
        data += f" records {s['indices']}"
    if s.get("split"):
        data += f", {s['split']}/{s.get('part')}"
    data_label = f"{data} ({s.get('xc') or 'HF'}/{s.get('basis')}, conv_tol {s.get('conv_tol')})"
    fig, _ = scf_figure(res, model_label, data_label)
    return save_png(fig, Path(json_path).with_suffix(".png"))


# ---- symmetry benchmark ------------------------------------------------------------------


def symmetry_figure(results: Mapping, data_label: str):
    """Residual equivariance error (uHa, per block type and over all entries) and inference
    time per structure against the number of averaging rotations (1 = the raw model).

    ``results`` is the JSON of ``benchmarks/symmetry_benchmark.py``. Colours are block
    types, line styles are models. Returns ``(figure, data)``: per model label,
    ``rotations``, ``all`` and ``by_block`` errors (mean, uHa) and ``ms`` per structure.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = _figure(11.5, 4.8)
    ax_err, ax_t = fig.subplots(1, 2)
    data, styles, markers = {}, ["-", "--", ":", "-."], ["o", "s", "^", "D"]
    order = "spdfghi"
    blocks = sorted({b for r in results.values() for v in r["variants"].values() for b in v["symmetry"]["by_block"]},
                    key=lambda b: (order.index(b[0]), order.index(b[-1])))
    color = {b: f"C{k % 10}" for k, b in enumerate(blocks)}
    model_handles, ticks = [], set()
    for k, (run, r) in enumerate(results.items()):
        label = f"{r['backbone']}{' + TraceGrad' if r.get('tracegrad') else ''} ({Path(r['checkpoint']).parent.name})"
        variants = sorted(r["variants"].values(), key=lambda v: v.get("n_rotations", 1))
        rot = np.array([v.get("n_rotations", 1) for v in variants], dtype=float)
        ticks.update(rot.tolist())
        d = {"rotations": rot, "all": np.array([v["symmetry"]["mean_uHa"] for v in variants]),
             "by_block": {b: np.array([v["symmetry"]["by_block"][b]["mean_uHa"] for v in variants]) for b in blocks
                          if all(b in v["symmetry"]["by_block"] for v in variants)},
             "ms": np.array([v["seconds_per_structure"] * 1e3 for v in variants])}
        ls, mk = styles[k % len(styles)], markers[k % len(markers)]
        ax_err.plot(rot, d["all"], ls=ls, color="k", lw=2.2, marker=mk, label=f"{label}: all entries")
        for b, y in d["by_block"].items():
            ax_err.plot(rot, y, ls=ls, color=color[b], lw=1, marker=mk, ms=3, label=f"{label}: {b} blocks")
        ax_t.plot(rot, d["ms"], ls=ls, color="k", marker=mk, label=label)
        model_handles.append(Line2D([], [], ls=ls, marker=mk, color="k", label=label))
        data[label] = d
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax in (ax_err, ax_t):
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("rotations averaged over (1 = raw model)")
        ax.grid(alpha=0.3, which="both", lw=0.5)
    ax_err.set_yscale("log")
    ax_err.set_ylabel("mean equivariance error (µHa)")
    ax_err.set_title("residual equivariance error per block type")
    ax_t.set_yscale("log")
    ax_t.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_t.yaxis.set_major_formatter(plain)
    ax_t.yaxis.set_minor_formatter(NullFormatter())
    ax_t.set_ylabel("inference time per structure (ms)")
    ax_t.set_title("cost")
    colours = [Line2D([], [], color="k", lw=2.2, label="all entries")]
    colours += [Line2D([], [], color=color[b], lw=1, label=f"{b} blocks") for b in blocks]
    fig.legend(handles=colours, loc="outside right upper", fontsize="small", title="colour: block type",
               title_fontsize="small")
    fig.legend(handles=model_handles, loc="outside lower center", ncols=min(len(model_handles), 3),
               fontsize="small", title=f"models (line style)   |   data: {data_label}", title_fontsize="small")
    return fig, data


def write_symmetry_chart(results: Mapping, json_path, data_label: str) -> Path:
    """Draw the symmetry chart of ``benchmarks/symmetry_benchmark.py`` next to ``json_path`` (``.png``)."""
    fig, _ = symmetry_figure(results, data_label)
    return save_png(fig, Path(json_path).with_suffix(".png"))

