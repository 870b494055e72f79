"""hamnet report: RUN/report.md gathers config, provenance, metrics, pictures, worst molecules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hamnet.report import _cell
from hamnet.testing import make_store, tiny_config

IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from hamnet.cli import main
    from hamnet.train.loop import run

    root = tmp_path_factory.mktemp("report")
    store = make_store(root / "water", n=8)
    run(tiny_config(store, limits={"max_steps": 4}, eval={"every_steps": 2}), root / "run", progress=False)
    assert main(["eval", str(root / "run"), "--no-progress"]) == 0  # eval_test.json + parity_test.png
    return root / "run"


def test_report_gathers_the_run(run_dir, capsys):
    from hamnet.cli import main

    assert main(["report", str(run_dir)]) == 0
    assert "report.md" in capsys.readouterr().out
    text = (run_dir / "report.md").read_text()
    for heading in ("# hamnet run", "## Final metrics", "## Worst molecules", "## Training", "## Data", "## Config"):
        assert f"\n{heading}" in "\n" + text, heading
    doc = json.loads((run_dir / "eval_test.json").read_text())
    # every metric of the JSON, with its unit, in the metrics table
    for key, value in doc["metrics"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {key} ("))
        assert _cell(value) in row and doc["units"][key] in row
    # relative links to pictures that exist
    links = IMAGE.findall(text)
    assert set(links) == {"learning_curves.png", "parity_test.png"}
    assert all((run_dir / link).is_file() for link in links)
    # the worst molecules of the JSON, by record index and source id
    for m in doc["worst_molecules"]:
        assert f"| {m['index']} | {m['source_id']} | {_cell(m['H_mae_uHa'])} |" in text
    # provenance from the store's metadata, split sizes from the checkpoint
    assert "| recipe | test-water |" in text and "| basis | sto-3g |" in text and "| xc | hf |" in text
    assert "pyscf_version" in text and "train 4, val 2, test 2 structures" in text
    # the resolved config, verbatim, in a fenced block
    assert "```yaml\n" + (run_dir / "config.yaml").read_text().rstrip() + "\n```" in text
    assert "| steps (epochs) | 4 (" in text


def test_report_elsewhere_links_back_to_the_run(run_dir, tmp_path):
    from hamnet.report import write_run_report

    out = write_run_report(run_dir, tmp_path / "docs" / "run.md")
    links = IMAGE.findall(out.read_text())
    assert links and all(not Path(link).is_absolute() for link in links)
    assert all((out.parent / link).resolve() == (run_dir / Path(link).name).resolve() for link in links)


def test_bad_run_directories_are_clear_errors(tmp_path, capsys):
    from hamnet.cli import main

    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run directory at" in err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a hamnet run directory" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "eval_test.json").write_text("{truncated")
    assert main(["report", str(tmp_path)]) == 2
    assert "eval_test.json is not a readable evaluation JSON" in capsys.readouterr().err


def test_report_of_a_run_without_evaluation(tmp_path):
    from hamnet.report import build_report

    (tmp_path / "config.yaml").write_text("seed: 0\n")
    text = build_report(tmp_path)
    assert "`hamnet eval RUN` writes one" in text and "No evaluation lists them yet" in text
