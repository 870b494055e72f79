"""Rotations: a quadrature on SO(3)/O(3) for averaging, and Haar-random rotations.

* :func:`rotation_grid` -- Lebedev points for the rotated z-axis times evenly spaced
  in-plane angles (optionally times inversion); the grid average of a Wigner matrix
  ``D^l`` is exactly zero for ``1 <= l <= min(order, n_inplane - 1)``.
* :func:`random_rotation` (numpy, seeded generator) and :func:`random_rotations` (torch's
  RNG, so a resumed training run draws the same ones).
* :func:`padded_rotations` -- the same rotations acting on padded orbital blocks.

All rotations act on positions as ``x -> R x`` about the origin.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch

from hamnet.errors import ConfigError
from hamnet.basis import OrbitalBasis

__all__ = ["LEBEDEV_ORDERS", "RotationGrid", "rotation_grid", "random_rotation", "random_rotations",
           "padded_rotations"]

#: Degrees of the Lebedev rules SciPy provides (``scipy.integrate.lebedev_rule``).
LEBEDEV_ORDERS = (3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 35, 41, 47, 53, 59, 65, 71, 77,
                  83, 89, 95, 101, 107, 113, 119, 125, 131)

@dataclasses.dataclass(frozen=True)
class RotationGrid:
    """A rotation quadrature: ``rotations`` ``(N, 3, 3)`` float64 and ``weights`` ``(N,)``
    (positive, summing to 1)."""

    rotations: np.ndarray
    weights: np.ndarray
    order: int
    n_inplane: int
    inversion: bool

    def __len__(self) -> int:
        return len(self.weights)

    @property
    def exact_degree(self) -> int:
        """Highest ``l`` up to which the grid average of every ``D^l`` (``l >= 1``) is exactly 0."""
        return min(self.order, self.n_inplane - 1)


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _ry(b: np.ndarray) -> np.ndarray:
    c, s = np.cos(b), np.sin(b)
    z, o = np.zeros_like(b), np.ones_like(b)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rotation_grid(order: int, n_inplane: Optional[int] = None, inversion: bool = False) -> RotationGrid:
    """Quadrature on SO(3) (or O(3) with ``inversion``): Lebedev x in-plane angles.

    Rotation ``R = Rz(alpha) Ry(beta) Rz(gamma)`` where ``(beta, alpha)`` are the polar
    angles of a Lebedev point of degree ``order`` and ``gamma`` runs over ``n_inplane``
    evenly spaced angles; weight = Lebedev weight / (4 pi n_inplane). With
    ``inversion`` every rotation also appears times ``-1`` (half the weight each).

    Parameters
    ----------
    order : int
        Lebedev degree, one of :data:`LEBEDEV_ORDERS`.
    n_inplane : int, optional
        In-plane angles (default ``order + 1``, which makes the grid exact to degree ``order``).
    inversion : bool
        Include improper rotations (average over O(3) instead of SO(3)).
    """
    from scipy.integrate import lebedev_rule

    if order not in LEBEDEV_ORDERS:
        raise ConfigError(f"no Lebedev rule of order {order!r}; available orders: {LEBEDEV_ORDERS}")
    n_inplane = order + 1 if n_inplane is None else n_inplane
    if not isinstance(n_inplane, (int, np.integer)) or isinstance(n_inplane, bool) or n_inplane < 1:
        raise ConfigError(f"n_inplane must be an integer >= 1, got {n_inplane!r}")
    x, w = lebedev_rule(order)  # (3, n), sum 4 pi
    alpha = np.arctan2(x[1], x[0])
    beta = np.arccos(np.clip(x[2], -1.0, 1.0))
    gamma = 2.0 * np.pi * np.arange(n_inplane) / n_inplane
    align = _rz(alpha) @ _ry(beta)  # (n, 3, 3): z -> Lebedev point
    R = (align[:, None] @ _rz(gamma)[None]).reshape(-1, 3, 3)
    weights = np.repeat(w / w.sum(), n_inplane) / n_inplane
    if inversion:
        R = np.concatenate([R, -R])
        weights = np.concatenate([weights, weights]) / 2.0
    return RotationGrid(R, weights, int(order), int(n_inplane), bool(inversion))


def random_rotation(rng: np.random.Generator, improper: bool = False) -> np.ndarray:
    """Haar-random ``(3, 3)`` rotation (det +1), or times ``-1`` (det -1) if ``improper``."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return -q if improper else q


def random_rotations(n: int, improper: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(n, 3, 3)`` float64 Haar-random rotations from torch's RNG (so a resumed
    training run draws the same ones); with ``improper`` each is also inverted with
    probability 1/2."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q[:, :, 0] *= torch.sign(torch.linalg.det(q))[:, None]  # det +1
    if improper:
        flip = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
        q = q * flip.to(q.dtype)[:, None, None]
    return q


def padded_rotations(basis: OrbitalBasis, rotations) -> torch.Tensor:
    """``(N, n_pad, n_pad)`` float64 padded-layout rotations (:meth:`OrbitalBasis.padded_rotation`)."""
    rot = np.asarray(torch.as_tensor(rotations, dtype=torch.float64).cpu())
    return torch.from_numpy(np.stack([basis.padded_rotation(R) for R in rot]))
