"""hamnet.plots: the pictures show the numbers of the JSON/CSV they sit beside.

No pixel is compared. Each test checks that the file is a valid PNG (magic bytes, PIL and
matplotlib read it back) and that the data drawn - read back from the Figure's artists
where matplotlib keeps them, else from the arrays the plotting function returns - equal
the metrics written to JSON, or values computed here independently (numpy, scipy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from hamnet.data import keys as DK
from hamnet.data import open_dataset
from hamnet.testing import make_store, tiny_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    """A readable PNG: the signature, PIL's verify and matplotlib's reader."""
    from matplotlib.image import imread
    from PIL import Image

    path = Path(path)
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG"
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name], "temporary file left behind"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("plots") / "water", n=8)


@pytest.fixture(scope="module")
def predictions(store, tmp_path_factory):
    """Perturbed reference matrices of every record, one molecule much worse than the others."""
    ds = open_dataset(store)
    rng = np.random.default_rng(7)
    preds = {}
    for i in range(len(ds)):
        F = ds[i][DK.F]
        d = rng.normal(scale=2e-4 * (20.0 if i == 5 else 1.0 + i), size=F.shape)
        preds[str(i)] = F + (d + d.T) / 2
    path = tmp_path_factory.mktemp("pred") / "pred.npz"
    np.savez(path, **preds)
    return path, preds


def test_import_is_light():
    code = "import sys, hamnet, hamnet.plots, hamnet.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_learning_curves_written_by_training_show_metrics_csv(store, tmp_path):
    from hamnet.plots import learning_curves_figure, read_metrics_csv, run_labels
    from hamnet.train.loop import run

    run_dir = tmp_path / "run"
    run(tiny_config(store, limits={"max_steps": 4}, eval={"every_steps": 2}), run_dir, progress=False,
        evaluate_test=False)
    assert_png(run_dir / "learning_curves.png")
    rows = read_metrics_csv(run_dir)
    assert [int(r["step"]) for r in rows] == [2, 4]
    model_label, data_label = run_labels(run_dir)
    assert "TraceGrad" in model_label and "water" in data_label
    fig, data = learning_curves_figure(rows, model_label, data_label)
    axes = fig.axes
    assert len(axes) == 8  # 4 quantities x (step, wall time)
    expected = {
        "train loss (MAE + MSE, Ha-based)": "train_loss",
        "val MAE of H, all entries": "val_H_mae_uHa",
        "val MAE of H, diagonal blocks": "val_H_diag_mae_uHa",
        "val MAE of H, off-diagonal blocks": "val_H_offdiag_mae_uHa",
        "val MAE of occupied orbital energies": "val_eps_occ_mae_uHa",
        "learning rate": "lr",
    }
    seen = set()
    for k, ax in enumerate(axes):
        xkey = "step" if k % 2 == 0 else "elapsed_s"  # a few seconds of training: drawn in seconds
        for line in ax.get_lines():
            col = expected[line.get_label()]
            seen.add(col)
            np.testing.assert_allclose(line.get_ydata(), [float(r[col]) for r in rows], rtol=1e-12)
            scale = 1.0
            np.testing.assert_allclose(line.get_xdata(), [float(r[xkey]) * scale for r in rows], rtol=1e-12)
    assert seen == set(expected.values())
    assert "µHa" in axes[2].get_ylabel() and "µHa" in axes[4].get_ylabel()
    assert axes[6].get_xlabel() == "optimizer step" and axes[7].get_xlabel() == "training wall time (s)"
    assert data["wall_unit"] == "s"
    legend = fig.legends[0]
    assert model_label in legend.get_title().get_text() and data_label in legend.get_title().get_text()


def test_parity_plot_of_hamnet_eval_equals_its_json(store, predictions, capsys):
    from hamnet.cli import main
    from hamnet.plots import ParityCollector, fmt_uha, parity_figure
    from hamnet.train.evaluate import evaluate_predictions

    path, preds = predictions
    assert main(["eval", "--predictions", str(path), "--data", str(store), "--split", "all"]) == 0
    doc = json.loads(path.with_name("pred.eval_all.json").read_text())
    png = path.with_name("pred.parity_all.png")
    assert doc["parity_plot"] == png.name
    assert_png(png)

    ds = open_dataset(store)
    per_record, collector = {}, ParityCollector()
    res, n = evaluate_predictions(path, ds, per_record=per_record, on_molecule=collector.add)
    assert res == pytest.approx(doc["metrics"], rel=1e-12)
    fig, data = parity_figure(collector, "predictions pred.npz", "water (hf/sto-3g), all")
    # the MAE in each title is the JSON's (QH9's equal-weight mean over molecules)
    for key, title in (("H_diag_mae", "diag"), ("H_offdiag_mae", "offdiag"), ("eps_occ_mae", "eps_occ"),
                       ("H_mae", "hist")):
        assert data["mae_uHa"][key] == pytest.approx(doc["metrics"][key], rel=1e-10), key
        assert f"MAE {fmt_uha(doc['metrics'][key])} µHa" in data["titles"][title].replace("mean", "MAE")
    titles = [ax.get_title() for ax in fig.axes]
    assert data["titles"]["diag"] in titles and data["titles"]["eps_occ"] in titles
    # the drawn entries and orbital energies, computed here independently
    ao_atom = np.array([0, 0, 0, 0, 0, 1, 2])  # water in STO-3G: O 1s 2s 2p(3), H 1s, H 1s
    same, upper = np.equal.outer(ao_atom, ao_atom), np.triu(np.ones((7, 7), bool))
    d_ref, d_pred, o_ref, o_pred, e_ref, e_pred, per_mol = [], [], [], [], [], [], []
    for i in range(len(ds)):
        rec, F = ds[i], preds[str(i)]
        d_ref.append(rec[DK.F][same & upper]), d_pred.append(F[same & upper])
        o_ref.append(rec[DK.F][~same & upper]), o_pred.append(F[~same & upper])
        e_ref.append(scipy.linalg.eigh(rec[DK.F], rec[DK.S], eigvals_only=True)[:5])
        e_pred.append(scipy.linalg.eigh(F, rec[DK.S], eigvals_only=True)[:5])
        per_mol.append(1e6 * np.abs(F - rec[DK.F]).mean())
    np.testing.assert_allclose(data["diag"][0], np.concatenate(d_ref), rtol=0, atol=0)
    np.testing.assert_allclose(data["diag"][1], np.concatenate(d_pred), rtol=0, atol=0)
    np.testing.assert_allclose(data["offdiag"][1], np.concatenate(o_pred), rtol=0, atol=0)
    eps_ax = next(ax for ax in fig.axes if ax.get_title() == data["titles"]["eps_occ"])
    offsets = eps_ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], np.concatenate(e_ref), atol=1e-9)
    np.testing.assert_allclose(offsets[:, 1], np.concatenate(e_pred), atol=1e-9)
    np.testing.assert_allclose(data["per_molecule_H_mae_uHa"], per_mol, rtol=1e-12)
    np.testing.assert_allclose(data["per_molecule_H_mae_uHa"],
                               [1e6 * per_record[i]["H_mae"] for i in range(len(ds))], rtol=1e-12)
    hist_ax = next(ax for ax in fig.axes if ax.get_title() == data["titles"]["hist"])
    assert sum(p.get_height() for p in hist_ax.patches) == len(ds)
    # the worst molecules: in the JSON, in the legend, and really the worst (record 5)
    worst = [m["index"] for m in doc["worst_molecules"]]
    assert worst == list(np.argsort(per_mol)[::-1][:5]) and worst[0] == 5
    assert doc["worst_molecules"][0]["source_id"] == "water-5"
    assert doc["worst_molecules"][0]["H_mae_uHa"] == pytest.approx(per_mol[5], rel=1e-12)
    labels = [t.get_text() for t in hist_ax.get_legend().get_texts()]
    assert labels[0].startswith("#5 water-5:")
    assert "(Ha)" in eps_ax.get_xlabel() and "µHa" in hist_ax.get_xlabel()
    assert "predictions pred.npz" in fig.legends[0].get_title().get_text()


def test_parity_thinning_keeps_the_mae_of_all_entries(store, predictions):
    from hamnet.plots import ParityCollector, _Thinned
    from hamnet.train.evaluate import evaluate_predictions

    path, _ = predictions
    ds = open_dataset(store)
    full, thin = ParityCollector(), ParityCollector(max_points=20)
    evaluate_predictions(path, ds, on_molecule=full.add)
    evaluate_predictions(path, ds, on_molecule=thin.add)
    assert thin.mae() == full.mae()
    assert thin.diag.total == full.diag.total == 8 * 17 and thin.diag.stride > 1  # O 5x5: 15, H: 1 + 1
    assert len(thin.diag.arrays()[0]) <= 20
    t = _Thinned(cap=10)
    for k in range(8):
        t.add(np.arange(4.0) + 4 * k, np.zeros(4))
    np.testing.assert_array_equal(t.arrays()[0], np.arange(0, 32, 4))  # every 4th point, uniformly


def test_parity_path_names():
    from hamnet.plots import parity_path

    assert parity_path("runs/a/eval_test.json") == Path("runs/a/parity_test.png")
    assert parity_path("p/pred.eval_val_avg3.json") == Path("p/pred.parity_val_avg3.png")
    assert parity_path("out/scores.json") == Path("out/scores.parity.png")


def _scf_results() -> dict:
    names = ["minao", "atom", "huckel", "1e", "sap", "hamnet"]
    cycles = [[8, 9, 7, 14, 10, 5], [8, 8, 7, 15, 11, 6], [7, 9, 7, 13, 10, 5]]
    mols = {}
    for k, cyc in enumerate(cycles):
        runs = {g: {"cycles": c, "wall_s": 0.01 * c + 0.001 * k, "e_tot": -76.0, "converged": True}
                for g, c in zip(names, cyc)}
        mols[f"{k}:water-{k}"] = {"runs": runs, "achieved": {g: cyc[-1] / c for g, c in zip(names[:-1], cyc)},
                                  "optimal": {g: 1 / c for g, c in zip(names[:-1], cyc)},
                                  "dE_vs_default": {g: 0.0 for g in names}, "energy_ok": True, "converged": True,
                                  "nao": 24}
    return {"settings": {"data": "/x/md17-water-40", "split": "random", "part": "test", "xc": "pbe",
                         "basis": "def2-svp", "hamnet": "hamnet", "model": "/x/run/best.pt", "conv_tol": 1e-9},
            "molecules": mols}


def test_scf_chart_shows_the_summary(tmp_path, load_benchmark):
    from hamnet.plots import scf_figure, write_scf_chart

    bench = load_benchmark("scf_speedup")
    res = _scf_results()
    res["summary"] = bench.summarize(res)
    png = write_scf_chart(res, tmp_path / "scf.json")
    assert png == tmp_path / "scf.png"
    assert_png(png)
    fig, data = scf_figure(res, "hamnet (run/best.pt)", "md17-water-40")
    names = data["names"]
    ax_cyc, ax_wall, ax_sc = fig.axes
    heights = [p.get_height() for p in ax_cyc.patches]
    np.testing.assert_allclose(heights, [res["summary"]["cycles"][g] for g in names], rtol=1e-12)
    np.testing.assert_allclose([p.get_height() for p in ax_wall.patches],
                               [res["summary"]["wall_s"][g] for g in names], rtol=1e-12)
    assert [t.get_text() for t in ax_cyc.get_xticklabels()] == names
    pts = ax_sc.collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(pts))) == [(7.0, 5.0), (8.0, 5.0), (8.0, 6.0)]
    assert "wall time (s)" in ax_wall.get_ylabel()
    assert "md17-water-40" in fig.legends[0].get_title().get_text()


def test_symmetry_chart_shows_the_json(tmp_path):
    from hamnet.plots import symmetry_figure, write_symmetry_chart

    def variant(err, ms, rot=None):
        sym = {"mean_uHa": err, "by_block": {"s-s": {"mean_uHa": err / 2}, "p-p": {"mean_uHa": err * 2}}}
        return {"symmetry": sym, "seconds_per_structure": ms / 1e3, **({"n_rotations": rot} if rot else {})}

    results = {"runs/pet": {"checkpoint": "runs/pet/best.pt", "backbone": "pet", "tracegrad": False,
                            "variants": {"raw": variant(1000.0, 0.4), "avg3": variant(200.0, 2.3, 24),
                                         "avg5": variant(70.0, 8.0, 84)}},
               "runs/tg": {"checkpoint": "runs/tg/best.pt", "backbone": "equivariant", "tracegrad": True,
                           "variants": {"raw": variant(0.06, 3.1), "avg3": variant(0.06, 42.0, 24)}}}
    png = write_symmetry_chart(results, tmp_path / "sym.json", "md17-water (pbe/def2-svp)")
    assert_png(png)
    fig, data = symmetry_figure(results, "md17-water (pbe/def2-svp)")
    ax_err, ax_t = fig.axes[:2]
    lines = {line.get_label(): line for line in ax_err.get_lines()}
    pet = "pet (pet)"
    np.testing.assert_allclose(lines[f"{pet}: all entries"].get_xdata(), [1, 24, 84])
    np.testing.assert_allclose(lines[f"{pet}: all entries"].get_ydata(), [1000, 200, 70])
    np.testing.assert_allclose(lines[f"{pet}: p-p blocks"].get_ydata(), [2000, 400, 140])
    np.testing.assert_allclose(lines["equivariant + TraceGrad (tg): s-s blocks"].get_ydata(), [0.03, 0.03])
    t_lines = {line.get_label(): line for line in ax_t.get_lines()}
    np.testing.assert_allclose(t_lines[pet].get_ydata(), [0.4, 2.3, 8.0])
    assert "µHa" in ax_err.get_ylabel() and "ms" in ax_t.get_ylabel()


def test_empty_inputs_are_clear_errors():
    from hamnet.plots import ParityCollector, parity_figure, scf_figure

    with pytest.raises(ValueError, match="no molecules"):
        parity_figure(ParityCollector(), "m", "d")
    with pytest.raises(ValueError, match="no molecules"):
        scf_figure({"molecules": {}}, "m", "d")
