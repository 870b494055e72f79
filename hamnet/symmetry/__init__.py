"""Rotational symmetry of Hamiltonian models: measure it, learn it, restore it.

Three questions from hamnet's source papers (PET/ECSE, "probing broken symmetries",
unconstrained MLIPs at scale) about what exact rotational symmetry buys and costs:

* **How equivariant is a model?** :func:`equivariance_error` rotates each molecule by
  random rotations ``R``, rotates the prediction back, ``D(R)^T H(R x) D(R)``, and reports
  its deviation from ``H(x)`` in micro-Hartree -- overall, on-site/off-site and per
  angular-momentum block type (``s-s``, ``s-p``, ...) -- and what it does to an
  observable, the occupied orbital energies. ``D`` is the AO rotation of
  :mod:`hamnet.basis` (verified against PySCF's integrals).
* **Learning symmetry from data:** :func:`rotate_batch` / :func:`random_rotations` rotate
  a training batch, inputs and target blocks (``F -> D F D^T``), which the training loop
  applies at every step when ``augment.rotations`` is on (the default for the
  unconstrained ``backbone: pet``).
* **Restoring it at test time:** :class:`RotationAveraged` wraps any model and
  predicts ``sum_g w_g D(g)^T H(g x) D(g)`` over a rotation quadrature
  (:func:`rotation_grid`: a Lebedev grid for the rotated z-axis times evenly spaced
  in-plane angles, optionally times inversion). The grid average of a Wigner matrix
  ``D^l`` is exactly zero for ``1 <= l <= min(order, n_inplane - 1)``, so the average
  removes every non-equivariant component of the output up to that degree; an
  equivariant model is left unchanged.

All rotations act on positions as ``x -> R x`` about the origin; the models are
translation invariant, so the centre does not matter.

The package has one module per idea: :mod:`~hamnet.symmetry.grids` (rotation grids and
random rotations), :mod:`~hamnet.symmetry.augment` (rotated batches),
:mod:`~hamnet.symmetry.averaging` (the averaging wrapper), :mod:`~hamnet.symmetry.error`
(the equivariance-error measure) and :mod:`~hamnet.symmetry.report` (its table).
"""

from hamnet.symmetry.augment import MAX_ATOMS, back_rotated, rotate_batch
from hamnet.symmetry.averaging import SPREAD_DIAG, SPREAD_OFFDIAG, RotationAveraged
from hamnet.symmetry.error import equivariance_error
from hamnet.symmetry.grids import (
    LEBEDEV_ORDERS,
    RotationGrid,
    padded_rotations,
    random_rotation,
    random_rotations,
    rotation_grid,
)
from hamnet.symmetry.report import format_report

__all__ = [
    "LEBEDEV_ORDERS",
    "RotationGrid",
    "rotation_grid",
    "random_rotation",
    "random_rotations",
    "padded_rotations",
    "rotate_batch",
    "back_rotated",
    "RotationAveraged",
    "equivariance_error",
    "format_report",
    "SPREAD_DIAG",
    "SPREAD_OFFDIAG",
    "MAX_ATOMS",
]
