"""benchmarks/eps_outliers.py: per-molecule orbital-energy errors, checked by hand.

Adding ``c S`` to a Fock matrix shifts every generalized eigenvalue by exactly ``c``, so
each molecule's ε_occ MAE is ``|c|`` and the gap is unchanged. Moving the LUMO down to
a tenth of the gap above the HOMO (``F + S C diag(d) C^T S``, with ``C`` the reference
orbitals) leaves the occupied energies unchanged and is a gap collapse.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from hamnet.data import open_dataset


@pytest.fixture(scope="module")
def eps_outliers(load_benchmark):
    return load_benchmark("eps_outliers")


def _by_position(store, change):
    """``predict(Z, pos)`` returning ``change(record)`` for the record at those positions."""
    records = [store[i] for i in range(len(store))]

    def predict(Z, pos):
        (r,) = [r for r in records if np.array_equal(r["pos"], pos)]
        return change(r)

    return predict


def test_a_uniform_shift_is_its_size_and_a_closed_gap_is_counted(eps_outliers, store):
    ds = open_dataset(store)
    c = 2.5e-3
    errs, collapsed = eps_outliers.molecule_errors(_by_position(ds, lambda r: r["F"] + c * r["S"]), ds, [0, 1, 2])
    assert errs == pytest.approx([c, c, c], rel=1e-8) and collapsed == 0

    def lumo_down(r):
        e, C = scipy.linalg.eigh(r["F"], r["S"])
        n = int(r["nocc"])
        d = np.zeros_like(e)
        d[n] = e[n - 1] + 0.1 * (e[n] - e[n - 1]) - e[n]
        SC = r["S"] @ C
        return r["F"] + SC @ np.diag(d) @ SC.T

    errs, collapsed = eps_outliers.molecule_errors(_by_position(ds, lumo_down), ds, [0, 1])
    assert np.all(errs < 1e-10) and collapsed == 2


def test_missing_runs_are_a_one_line_error(eps_outliers, store, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        eps_outliers.main([str(tmp_path), str(store), "off"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no runs" in err
