"""Build, save and load hamnet models (any backbone of :data:`hamnet.nn.config.BACKBONES`).

* :func:`build_model` -- a model with random weights for a basis and a set of elements;
  the backbone is chosen by name (``backbone="so2"`` (default), ``"equivariant"`` or ``"pet"``) and
  its hyperparameters are validated by its config class (:mod:`hamnet.nn.config`).
* :func:`save_model` / :func:`load_model` -- the model file: format and hamnet version,
  basis, elements, xc, dtype, hyperparameters and weights, written atomically.

The backbones themselves live in :mod:`hamnet.nn` (the batch contract is documented in
:mod:`hamnet.nn.equivariant`); :class:`HamiltonianModel` is the equivariant one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

import hamnet
from hamnet.atomic import atomic_write
from hamnet.basis import BasisError, OrbitalBasis
from hamnet.errors import ConfigError, HamnetError, MissingFileError
from hamnet.nn.base import ModelBase
from hamnet.nn.config import model_class, model_config
from hamnet.nn.equivariant import EquivariantModel, HamiltonianModel
from hamnet.nn.pet import PETHamiltonianModel

__all__ = [
    "HamiltonianModel",
    "EquivariantModel",
    "PETHamiltonianModel",
    "ConfigError",
    "ModelFileError",
    "build_model",
    "save_model",
    "load_model",
    "model_payload",
    "model_from_payload",
    "atomic_torch_save",
]

DEFAULT_ELEMENTS = ("H", "C", "N", "O", "F")


# ---- construction ---------------------------------------------------------------------------


@contextlib.contextmanager
def _default_dtype(dtype: Optional[torch.dtype]):
    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_model(
    basis: Union[str, dict, OrbitalBasis] = "def2-svp",
    elements: Optional[Sequence] = DEFAULT_ELEMENTS,
    tracegrad: Optional[bool] = None,
    *,
    xc: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
    **hyperparameters,
) -> ModelBase:
    """Build a model of the backbone ``hyperparameters["backbone"]`` with random weights.

    Parameters
    ----------
    basis : str, dict or OrbitalBasis
        PySCF basis name (e.g. ``"def2-svp"``), per-element basis dict, or a layout.
    elements : sequence of str or int
        Elements the model supports (ignored when ``basis`` is an OrbitalBasis).
    tracegrad : bool, optional
        ``False`` builds the baseline: the same backbone and heads without TraceGrad.
        Default off (:class:`hamnet.nn.config.EquivariantConfig` says why); ``True`` needs an
        equivariant backbone (``so2`` or ``equivariant``).
    xc : str, optional
        Functional of the data the model will be trained on (stored with the model).
    dtype : torch.dtype, optional
        Parameter dtype (default: torch's default, float32). The model is constructed
        under this default dtype, so e3nn's Clebsch-Gordan constants are exact in
        float64 (calling ``.double()`` afterwards would keep float32-rounded constants).
    **hyperparameters
        ``backbone`` (default ``"so2"``, :data:`hamnet.nn.config.DEFAULT_BACKBONE`) and that backbone's hyperparameters
        (:class:`hamnet.nn.config.EquivariantConfig`, :class:`~hamnet.nn.config.PETConfig`);
        unknown names or bad values raise :class:`hamnet.errors.ConfigError`.
    """
    if not isinstance(basis, OrbitalBasis):
        basis = OrbitalBasis(basis, elements)
    config = model_config({**hyperparameters, "tracegrad": tracegrad})
    if xc is not None and not isinstance(xc, str):
        raise ConfigError(f"xc must be a functional name (str) or None, got {xc!r}")
    with _default_dtype(dtype):
        return model_class(config.backbone)(basis, config, xc=xc)


# ---- files ----------------------------------------------------------------------------------

FORMAT = "hamnet-model"
#: 1: equivariant models; 2: adds ``config["backbone"]`` (and the ``pet_*`` hyperparameters);
#: 3: adds ``tracegrad_layers``, ``tracegrad_decode``, ``tracegrad_combine`` and
#: ``tracegrad_encoder`` (per-layer TraceGrad). Older files still load: version-1 files
#: get the version-2 defaults, and files before version 3 the TraceGrad they were trained
#: with (:data:`LEGACY_TRACEGRAD`); tests/fixtures holds one file of each version.
FORMAT_VERSION = 3

#: TraceGrad keys of model files before format 3: TraceGrad on the final features only.
LEGACY_TRACEGRAD = {"tracegrad_layers": "last", "tracegrad_decode": "own", "tracegrad_combine": "rms",
                    "tracegrad_encoder": "gram"}


class ModelFileError(HamnetError, ValueError):
    """A model file that is missing pieces, truncated, or not a hamnet model."""


def model_payload(model: ModelBase) -> dict:
    """Everything needed to rebuild ``model``: plain Python values and CPU tensors."""
    if model.save_refusal:
        raise TypeError(model.save_refusal)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hamnet_version": hamnet.__version__,
        "basis": model.basis.basis,
        "elements": list(model.basis.elements),
        "xc": model.xc,
        "dtype": str(model.dtype).replace("torch.", ""),
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def check_version(version, supported: int, what: str, source: str, error: type) -> None:
    """Raise ``error`` unless ``version`` is an int this hamnet reads (``<= supported``);
    shared by model files and training checkpoints."""
    if not isinstance(version, int) or version > supported:
        raise error(
            f"{source} has {what} version {version!r}; this hamnet ({hamnet.__version__}) reads "
            f"versions <= {supported}"
        )


def model_from_payload(payload, source: str = "payload") -> ModelBase:
    """Inverse of :func:`model_payload`; ``source`` names the origin in error messages."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{source} is not a hamnet model (no {FORMAT!r} format marker)")
    check_version(payload.get("format_version"), FORMAT_VERSION, "model format", source, ModelFileError)
    missing = [k for k in ("basis", "elements", "config", "state_dict", "dtype") if k not in payload]
    if missing:
        raise ModelFileError(f"{source} lacks {missing}")
    dtype = getattr(torch, str(payload["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise ModelFileError(f"{source} has an unknown dtype {payload['dtype']!r}")
    config = dict(payload["config"])
    if payload["format_version"] < 2:  # before backbones had names: the e3nn network
        config.setdefault("backbone", "equivariant")
    if payload["format_version"] < 3 and config.get("backbone", "equivariant") in ("equivariant", "so2"):
        config = {**LEGACY_TRACEGRAD, **config}
    try:
        model = build_model(payload["basis"], payload["elements"], xc=payload.get("xc"), dtype=dtype, **config)
    except (ConfigError, BasisError) as exc:
        raise ModelFileError(f"{source}: cannot rebuild the stored model: {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{source}: weights do not fit the stored architecture: {exc}") from exc
    return model


def atomic_torch_save(obj, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` atomically (:func:`hamnet.atomic.atomic_write`: temporary file, fsync, rename)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def save_model(model: ModelBase, path: Union[str, os.PathLike]) -> None:
    """Write ``model`` (format version, hamnet version, basis, elements, xc,
    hyperparameters, dtype, weights) atomically to ``path``."""
    atomic_torch_save(model_payload(model), path)


def load_model(path: Union[str, os.PathLike], map_location="cpu") -> ModelBase:
    """Read a model written by :func:`save_model`, or a shipped model by name.

    ``path`` is a model file, or the name of a shipped model
    (:func:`hamnet.pretrained_models`); an existing file of that name wins.

    Raises
    ------
    MissingFileError
        No such file and no shipped model of that name (a ``FileNotFoundError``).
    ModelFileError
        Truncated/corrupted file, a file that is not a hamnet model, or a newer format.
    """
    path = Path(path)
    if not path.is_file():
        from hamnet import pretrained

        entry = pretrained.find_pretrained(str(path))
        if entry is None:
            raise MissingFileError(
                f"no model file at {path}, and no shipped model of that name "
                f"({pretrained.describe_shipped()})"
            )
        path = Path(entry["file"])
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError variants
        raise ModelFileError(
            f"{path} is not a readable hamnet model file (truncated or not a torch file?): {exc}"
        ) from exc
    model = model_from_payload(payload, source=str(path))
    return model.to(map_location) if map_location is not None else model
