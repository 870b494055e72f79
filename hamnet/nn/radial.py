"""Radial bases and smooth cutoffs (distances in Angstrom).

* :class:`BesselBasis` with :class:`PolynomialCutoff` describes message-passing edges:
  the envelope takes every message smoothly (two continuous derivatives) to zero at the
  cutoff, so the model is a smooth function of the positions even as neighbours come
  and go.
* :class:`GaussianBasis` describes the atom pairs of the off-diagonal blocks, which are
  predicted for all pairs (no cutoff is needed there).
* :class:`RadialMLP` turns a radial basis into tensor-product weights; :func:`mlp` is the
  SiLU MLP it (and the TraceGrad encoder/decoder and the PET heads) are built from.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialCutoff(nn.Module):
    """Smooth envelope ``u(r)``: 1 at ``r = 0``, 0 for ``r >= r_max``, C^2 at the cutoff.

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``, ``x = r / r_max``
    (Klicpera et al., DimeNet).

    Parameters
    ----------
    r_max : float
        Cutoff in Angstrom.
    p : int
        Polynomial order (6 gives a soft but short decay).
    """

    def __init__(self, r_max: float, p: int = 6):
        super().__init__()
        if r_max <= 0:
            raise ValueError(f"cutoff must be positive, got {r_max} Angstrom")
        self.r_max = float(r_max)
        self.p = int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``(...)`` distances in Angstrom -> ``(...)`` envelope in [0, 1]."""
        x = r / self.r_max
        p = self.p
        u = (
            1.0
            - (p + 1) * (p + 2) / 2 * x**p
            + p * (p + 2) * x ** (p + 1)
            - p * (p + 1) / 2 * x ** (p + 2)
        )
        return u * (x < 1.0)


class BesselBasis(nn.Module):
    """``e_n(r) = sqrt(2 / r_max) sin(n pi r / r_max) / r``, ``n = 1..n_basis``.

    Parameters
    ----------
    r_max : float
        Cutoff in Angstrom.
    n_basis : int
        Number of basis functions.
    """

    def __init__(self, r_max: float, n_basis: int):
        super().__init__()
        self.r_max = float(r_max)
        self.n_basis = int(n_basis)
        # Integers are exact in any dtype; frequencies are formed in the input's dtype.
        self.register_buffer("n", torch.arange(1, n_basis + 1), persistent=False)  # [n_basis]

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``(n,)`` distances (Angstrom, > 0) -> ``(n, n_basis)``."""
        r = r.unsqueeze(-1)  # [n, 1]
        freq = self.n.to(r.dtype) * (math.pi / self.r_max)  # [n_basis] 1/Angstrom
        return math.sqrt(2.0 / self.r_max) * torch.sin(freq * r) / r  # [n, n_basis]


class GaussianBasis(nn.Module):
    """Gaussians ``exp(-((r - mu_k) / w)^2)`` with centres evenly spaced on ``[0, r_max]``.

    Parameters
    ----------
    r_max : float
        Last centre in Angstrom; longer distances still get a smooth, decaying code.
    n_basis : int
        Number of Gaussians; their width ``w`` is the spacing of the centres.
    """

    def __init__(self, r_max: float, n_basis: int):
        super().__init__()
        if n_basis < 2:
            raise ValueError(f"a Gaussian basis needs at least 2 functions, got {n_basis}")
        self.register_buffer("k", torch.arange(n_basis), persistent=False)  # [n_basis]
        self.width = float(r_max) / (n_basis - 1)  # Angstrom, also the spacing of the centres
        self.n_basis = int(n_basis)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``(n,)`` distances in Angstrom -> ``(n, n_basis)``."""
        centers = self.k.to(r.dtype) * self.width  # [n_basis] Angstrom
        return torch.exp(-(((r.unsqueeze(-1) - centers) / self.width) ** 2))


def mlp(n_in: int, hidden: int, n_out: int, depth: int) -> nn.Sequential:
    """``depth`` hidden SiLU layers of width ``hidden`` (SiLU is smooth: double backward works)."""
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


class RadialMLP(nn.Module):
    """Invariant MLP ``(n, n_in) -> (n, n_out)`` with SiLU, e.g. radial basis -> TP weights."""

    def __init__(self, n_in: int, hidden: int, n_out: int, n_hidden_layers: int = 1):
        super().__init__()
        self.net = mlp(n_in, hidden, n_out, n_hidden_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
