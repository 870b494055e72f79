"""Model hyperparameters, one validated config class per backbone, and the backbone registry.

:data:`BACKBONES` is the one place a backbone is chosen by name: it maps the name to its
config class and (lazily, so that validating a config needs no torch) to its model class.
A new backbone adds a :class:`ModelConfig` subclass and one registry line, and gets the
shared tests of :mod:`hamnet.testing` for free.

Hyperparameters are written flat in the ``model:`` section of a run config and in model
files (``pet_dim: 64``); each backbone accepts only its own keys. Model files and
configs written before the split list every backbone's keys: keys of another backbone
that hold that backbone's default are ignored, any other value is an error.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import Field, model_validator

from hamnet.errors import ConfigError
from hamnet.validation import Bool, PosInt, PosNumber, StrictModel, Strict, invalid, validate

__all__ = ["DEFAULT_BACKBONE", "ModelConfig", "EquivariantConfig", "SO2Config", "PETConfig", "Backbone", "BACKBONES", "ConfigError",
           "model_config", "model_class"]


class ModelConfig(StrictModel):
    """Hyperparameters every backbone has (defaults are small and CPU-fast).

    The angular momentum of equivariant features is not a hyperparameter: it is derived
    from the basis (the highest ``L`` of :attr:`OrbitalBasis.block_irreps`).
    """

    backbone: str
    tracegrad: Bool = False  # TraceGrad (equivariant backbones only)
    num_layers: PosInt = 2  # message-passing / transformer layers
    cutoff: PosNumber = 5.0  # Angstrom, message-passing edges
    num_radial: PosInt = 8  # Bessel functions of edge lengths
    pair_radial_max: PosNumber = 10.0  # Angstrom, last centre of the pair-distance Gaussians
    num_pair_radial: Annotated[int, Strict(), Field(ge=2)] = 12  # Gaussians of pair distances

    def to_dict(self) -> dict:
        """Flat ``{key: value}`` as written in configs and model files."""
        return self.model_dump(by_alias=True)


class EquivariantConfig(ModelConfig):
    """The O(3)-equivariant e3nn backbone with TraceGrad (:mod:`hamnet.nn.equivariant`)."""

    backbone: Literal["equivariant"] = "equivariant"
    # True: TraceGrad; off by default because at equal training time it lost to this exact
    # ablation (same backbone and heads, no TraceGrad) on md17-water (benchmarks/README.md)
    tracegrad: Bool = False
    num_channels: PosInt = 8  # multiplicity of every irrep type in node and pair features
    radial_hidden: PosInt = 32  # hidden width of radial MLPs
    avg_num_neighbors: PosNumber = 8.0  # normalization of summed messages
    pair_cutoff: Optional[PosNumber] = None  # Angstrom; off-diagonal blocks beyond it are zero (None: dense)
    # TraceGrad (hamnet.nn.tracegrad); model files older than format 3 read as layers "last",
    # decode "own", combine "rms", encoder "gram" (what they were trained with)
    tracegrad_layers: Literal["all", "last"] = "last"  # after every interaction layer, or after the last only
    tracegrad_decode: Literal["own", "concat"] = "concat"  # one decoder of all layers' z's, or each z decodes its own traces
    tracegrad_combine: Literal["rms", "plain", "normtied"] = "rms"  # f' = f + g(v): see hamnet.nn.tracegrad
    tracegrad_encoder: Literal["gram", "cg"] = "gram"  # invariants: Gram contractions or a learnable CG product
    tracegrad_channels: PosInt = 4  # copies per irrep type entering the invariant contractions
    tracegrad_hidden: PosInt = 64  # width of the invariant encoder/decoder MLPs
    tracegrad_depth: PosInt = 3  # hidden layers of the invariant encoder
    tracegrad_dim: PosInt = 32  # size of the invariant code z
    tracegrad_alpha: PosNumber = 0.1  # initial alpha of g(v) ("rms", "normtied"; learnable per irrep type)
    tracegrad_eps: PosNumber = 1e-4  # regularizer of the normalization of v (bounds its gradient near v = 0)


class SO2Config(EquivariantConfig):
    """The SO(2)-convolution backbone with sparse pairs (:mod:`hamnet.nn.so2`); keys as ``equivariant``.

    ``pair_cutoff`` defaults to a finite value: off-diagonal blocks are computed only for
    pairs closer than it (benchmarks/pair_cutoff.py measures the error this costs).
    """

    backbone: Literal["so2"] = "so2"
    pair_cutoff: Optional[PosNumber] = 10.0  # Angstrom; off-diagonal blocks beyond it are zero (None: dense)


class PETConfig(ModelConfig):
    """The unconstrained point-edge transformer (:mod:`hamnet.nn.pet`); not equivariant."""

    backbone: Literal["pet"] = "pet"
    dim: PosInt = Field(64, alias="pet_dim")  # width of node and edge tokens
    heads: PosInt = Field(4, alias="pet_heads")  # attention heads (must divide dim)
    ff: PosInt = Field(128, alias="pet_ff")  # hidden width of the transformer feed-forward blocks
    pair_hidden: PosInt = Field(128, alias="pet_pair_hidden")  # hidden width of the block MLPs

    @model_validator(mode="after")
    def _check(self):
        if self.tracegrad:
            raise invalid("tracegrad", "needs backbone 'equivariant' (v = dz/df is only equivariant for "
                          "equivariant features f); set tracegrad: false for backbone 'pet'")
        if self.dim % self.heads:
            raise invalid(None, f"'pet_heads' ({self.heads}) must divide 'pet_dim' ({self.dim})")
        return self


@dataclass(frozen=True)
class Backbone:
    """A registered backbone: its config class and its model class as ``"module:Class"``."""

    config: type
    model: str
    equivariant: bool


#: Backbones selectable by ``model.backbone``: the O(3)-equivariant e3nn network, and an
#: unconstrained point-edge transformer on Cartesian edge vectors (train it with rotational
#: augmentation, average it with :mod:`hamnet.symmetry`).
BACKBONES: dict[str, Backbone] = {
    "equivariant": Backbone(EquivariantConfig, "hamnet.nn.equivariant:EquivariantModel", True),
    "pet": Backbone(PETConfig, "hamnet.nn.pet:PETHamiltonianModel", False),
    "so2": Backbone(SO2Config, "hamnet.nn.so2:SO2Model", True),
}


def _keys(cls) -> dict:
    """Key as written (alias) -> default, for every field of a config class."""
    return {f.alias or name: f.default for name, f in cls.model_fields.items()}


#: The backbone of a config or ``build_model`` call that names none: the SO(2)-convolution
#: network, which at equal training time beats the e3nn one (benchmarks/README.md). Model
#: files of format 1 name none and are read as ``equivariant`` (what they hold).
DEFAULT_BACKBONE = "so2"


def model_config(values: Mapping[str, Any], where: str = "model", extra_keys=()) -> ModelConfig:
    """The validated config of the backbone ``values["backbone"]`` (default :data:`DEFAULT_BACKBONE`).

    ``tracegrad: None`` means the backbone's default. Raises :class:`ConfigError` naming the
    key path and the allowed keys or values.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping of hyperparameters, got {values!r}")
    values = {k: v for k, v in values.items() if not (k == "tracegrad" and v is None)}
    name = values.get("backbone", DEFAULT_BACKBONE)
    if name not in BACKBONES:
        raise ConfigError(f"{where}.backbone: {name!r} is not allowed; allowed values: {', '.join(BACKBONES)}")
    cls = BACKBONES[name].config
    own = _keys(cls)
    defaults: dict = {}  # key of another backbone -> the defaults it has there
    for other in BACKBONES.values():
        for key, default in _keys(other.config).items():
            defaults.setdefault(key, []).append(default)
    for key in [k for k in values if k in defaults and k not in own]:
        if values[key] not in defaults[key]:  # legacy flat configs list every backbone's keys
            raise ConfigError(f"{where}.{key} is a hyperparameter of another backbone, not of {name!r}; "
                              f"allowed keys: {', '.join(list(extra_keys) + list(own))}")
        del values[key]
    return validate(cls, {**values, "backbone": name}, where, extra_keys)


def model_class(name: str) -> type:
    """The model class of a registered backbone (imported on first use)."""
    module, _, attr = BACKBONES[name].model.partition(":")
    return getattr(importlib.import_module(module), attr)
