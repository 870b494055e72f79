"""Model hyperparameters: one typed, validated dataclass (defaults are small and CPU-fast)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

__all__ = ["ModelConfig", "ConfigError", "BACKBONES"]

#: Backbones selectable by ``model.backbone``: the O(3)-equivariant e3nn network, and
#: an unconstrained point-edge transformer on Cartesian edge vectors (not equivariant;
#: train it with rotational augmentation, average it with :mod:`hamnet.symmetry`).
BACKBONES = ("equivariant", "pet")


class ConfigError(ValueError):
    """A hyperparameter with a wrong name, type or value (the message names it)."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of :class:`hamnet.model.HamiltonianModel`.

    The angular momentum of the features is not a hyperparameter: it is derived from
    the basis (the highest ``L`` of :attr:`OrbitalBasis.block_irreps`).
    """

    backbone: str = "equivariant"  # one of BACKBONES
    tracegrad: Optional[bool] = None  # None: on for "equivariant", off otherwise; False: the baseline
    num_channels: int = 8  # multiplicity of every irrep type in node and pair features
    num_layers: int = 2  # message-passing layers
    cutoff: float = 5.0  # Angstrom, message-passing edges
    num_radial: int = 8  # Bessel functions of edge lengths
    radial_hidden: int = 32  # hidden width of radial MLPs
    avg_num_neighbors: float = 8.0  # normalization of summed messages
    pair_cutoff: Optional[float] = None  # Angstrom; off-diagonal blocks beyond it are zero (None: dense)
    pair_radial_max: float = 10.0  # Angstrom, last centre of the pair-distance Gaussians
    num_pair_radial: int = 12  # Gaussians of pair distances
    tracegrad_channels: int = 4  # copies per irrep type entering the invariant contractions
    tracegrad_hidden: int = 64  # width of the invariant encoder/decoder MLPs
    tracegrad_depth: int = 3  # hidden layers of the invariant encoder
    tracegrad_dim: int = 32  # size of the invariant code z
    tracegrad_alpha: float = 0.1  # initial step of f' = f + alpha v_hat (learnable per irrep type)
    tracegrad_eps: float = 1e-8  # regularizer of the per-irrep-type normalization of v
    pet_dim: int = 64  # backbone "pet": width of node and edge tokens
    pet_heads: int = 4  # backbone "pet": attention heads (must divide pet_dim)
    pet_ff: int = 128  # backbone "pet": hidden width of the transformer feed-forward blocks
    pet_pair_hidden: int = 128  # backbone "pet": hidden width of the block MLPs

    def __post_init__(self):
        if self.tracegrad is None:
            object.__setattr__(self, "tracegrad", self.backbone == "equivariant")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "backbone":
                if v not in BACKBONES:
                    raise ConfigError(f"model hyperparameter 'backbone' must be one of {', '.join(BACKBONES)}; got {v!r}")
            elif f.name == "tracegrad":
                if not isinstance(v, bool):
                    raise ConfigError(f"model hyperparameter 'tracegrad' must be true or false, got {v!r}")
            elif f.name == "pair_cutoff":
                if v is not None and (not _is_number(v) or v <= 0):
                    raise ConfigError(
                        f"model hyperparameter 'pair_cutoff' must be a positive number (Angstrom) or null, got {v!r}"
                    )
            elif f.type in ("int", int):
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ConfigError(f"model hyperparameter {f.name!r} must be an integer >= 1, got {v!r}")
            elif f.type in ("float", float):
                if not _is_number(v) or not v > 0:
                    raise ConfigError(f"model hyperparameter {f.name!r} must be a positive number, got {v!r}")
        if self.backbone != "equivariant" and self.tracegrad:
            raise ConfigError(
                f"model hyperparameter 'tracegrad' needs backbone 'equivariant' (v = dz/df is only "
                f"equivariant for equivariant features f); set tracegrad: false for backbone {self.backbone!r}"
            )
        if self.pet_dim % self.pet_heads:
            raise ConfigError(f"model hyperparameter 'pet_heads' ({self.pet_heads}) must divide 'pet_dim' ({self.pet_dim})")
        if self.num_pair_radial < 2:
            raise ConfigError(f"model hyperparameter 'num_pair_radial' must be >= 2, got {self.num_pair_radial}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Build from a mapping, rejecting unknown names with the list of allowed ones."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown model hyperparameter(s) {unknown}; allowed: {', '.join(allowed)}")
        values = dict(values)
        for f in dataclasses.fields(cls):  # accept integral floats for float fields (YAML "5")
            if f.name in values and f.type in ("float", float, "Optional[float]") and _is_number(values[f.name]):
                values[f.name] = float(values[f.name])
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
