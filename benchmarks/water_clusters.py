"""Deterministic water clusters of any size for the scaling and pair-cutoff benchmarks (not a test).

``water_cluster(n)`` places ``n`` rigid waters (O-H 0.9572 Angstrom, H-O-H 104.52 degrees)
on the ``n`` sites of a cubic lattice (3.1 Angstrom, liquid density) nearest to its
centre, each jittered by up to 0.2 Angstrom and randomly oriented; an orientation that
brings two atoms of different waters closer than 1.5 Angstrom is drawn again.
"""

from __future__ import annotations

import numpy as np

SPACING = 3.1  # Angstrom: one water per 29.8 A^3, about 1 g/cm^3
OH, HOH = 0.9572, np.deg2rad(104.52)
_WATER = np.array([[0.0, 0.0, 0.0],
                   [OH * np.sin(HOH / 2), 0.0, OH * np.cos(HOH / 2)],
                   [-OH * np.sin(HOH / 2), 0.0, OH * np.cos(HOH / 2)]])


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def water_cluster(n_waters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(Z (3n,), positions (3n, 3) Angstrom)`` of a roughly spherical cluster of ``n`` waters."""
    if n_waters < 1:
        raise ValueError(f"a water cluster needs at least one water, got {n_waters}")
    rng = np.random.default_rng(seed)
    k = int(np.ceil(n_waters ** (1 / 3))) + 2
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3) - (k - 1) / 2
    sites = grid[np.argsort(np.linalg.norm(grid, axis=1), kind="stable")[:n_waters]] * SPACING
    placed = np.zeros((0, 3))
    for site in sites:
        for _ in range(100):
            mol = _WATER @ _rotation(rng).T + site + rng.uniform(-0.2, 0.2, size=3)
            if not len(placed) or np.linalg.norm(placed[:, None] - mol[None], axis=-1).min() > 1.5:
                break
        else:
            raise RuntimeError("could not place a water without a clash")
        placed = np.concatenate([placed, mol])
    return np.tile([8, 1, 1], n_waters), placed
