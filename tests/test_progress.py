"""Progress output fit for log files: a redirected run writes plain lines, no bar frames."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml


def test_redirected_training_run_writes_no_carriage_return_frames(tmp_path, store, config_for):
    cfg = config_for(store, limits={"max_steps": 12}, eval={"every_steps": 5})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    log = tmp_path / "out.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as fh:  # stdout and stderr to a file, as `hamnet train ... > out.log 2>&1`
        rc = subprocess.run([sys.executable, "-m", "hamnet", "train", str(tmp_path / "cfg.yaml"), "--run-dir",
                             str(tmp_path / "run")], env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=300).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "\r" not in text
    assert "step 10: loss" in text and "step 5: val" in text  # plain periodic lines instead of a bar
    run_log = (tmp_path / "run" / "train.log").read_text()
    assert "\r" not in run_log and "step 10: loss" in run_log and "training finished at step 12" in run_log


def test_progress_bar_is_off_without_a_terminal_and_when_quiet():
    from hamnet.progress import progress_bar

    assert progress_bar(False, total=3).disable
    with progress_bar(True, total=3) as bar:  # pytest captures stderr: not a terminal
        assert bar.disable
