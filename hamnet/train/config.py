"""Run configuration: one YAML file, typed and validated (pydantic, :mod:`hamnet.validation`).

A config has the sections below; every key is optional (defaults in brackets are the
built-in default job, a small water replica trained for a few minutes on a CPU)::

    run_dir: runs/md17-water        # where config.yaml, train.log, metrics.csv, *.pt go
    data:
      path: null                    # a hamnet dataset store (directory), or
      recipe: md17-water            # a recipe name, generated on first use into
      n: 60                         #   <root>/<recipe>-<n> by `hamnet data make`'s code
      root: data
      workers: 1                    # labeling processes for a recipe
      cache: true                   # keep featurized molecules in memory
    split: {name: null, train: train, val: val, test: test, fractions: null}
    model:                          # basis and xc come from the store
      elements: auto                # or a list of symbols; auto = elements of the store
      fit_reference: true           # per-element diagonal reference from training data
      init_from: null               # fine-tune: start from this model's weights (same architecture)
      tracegrad: true               # ... backbone and its hyperparameters (hamnet.nn.config)
    loss: {mae_weight: 1.0, mse_weight: 1.0,
           trace_mode: balanced,        # (1-lam) L_H + lam sg(L_H/L_T) L_T; or fixed: L_H + trace_weight L_T
           trace_lambda: 0.2, trace_weight: 1.0,
           eig_weight: 0.0,             # orbital-energy loss (per Hartree of MAE), off
           eig_virtual: 2,              #   virtual orbitals it includes above the nocc occupied
           density_weight: 0.0}         # occupied-subspace projector loss (dimensionless), off
    augment: {rotations: null, inversion: false}  # null: on for backbone pet, off for equivariant
    optim: {lr: 0.005, weight_decay: 0.0, betas: [0.9, 0.999], batch_size: 8,
            clip_grad_norm: 10.0, ema_decay: 0.99}
    schedule: {kind: cosine, warmup_steps: 50, min_lr_ratio: 0.02}
    limits: {max_steps: null, max_minutes: 2.5,   # at least one of them
             clock: wall}                   # or cpu: the process's CPU time (equal compute on a busy machine)
    eval: {every_steps: 100, max_val: null, metric: H_mae, batch_size: 16}  # metric: or density_mae, ...
    precision: float32              # or float64
    seed: 0
    device: auto                    # auto | cpu | cuda | cuda:N

A wrong key or value raises :class:`ConfigError` naming the key (``optim.lr``) and the
allowed keys or values.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

import yaml
from pydantic import Field, field_validator, model_validator

from hamnet.data.record_keys import SPLIT_PARTS
from hamnet.errors import ConfigError, MissingFileError
from hamnet.validation import Bool, Int, Number, PosInt, StrictModel, invalid, validate

__all__ = [
    "ConfigError",
    "TrainConfig",
    "DataConfig",
    "SplitConfig",
    "LossConfig",
    "OptimConfig",
    "ScheduleConfig",
    "LimitsConfig",
    "EvalConfig",
    "AugmentConfig",
    "recipe_names",
    "load_config",
    "default_config",
    "config_diff",
]

Part = Literal[SPLIT_PARTS]  # "train", "val", "test"


def recipe_names() -> tuple:
    """Recipes of ``hamnet data make`` (:data:`data_tools.recipes.RECIPES`, the one list)."""
    try:
        from data_tools.recipes import RECIPES
    except ImportError as exc:  # pragma: no cover - data_tools ships with hamnet
        raise ConfigError(f"data.recipe needs data_tools, which is not importable here ({exc})") from exc
    return tuple(sorted(RECIPES))


# ---- sections --------------------------------------------------------------------------


class DataConfig(StrictModel):
    """Where the labeled structures come from: a store ``path`` or a ``recipe`` of size ``n``."""

    path: Optional[str] = None
    recipe: Optional[str] = None
    n: Optional[Int] = None
    root: str = "data"
    workers: PosInt = 1
    cache: Bool = True
    exclude_unconverged: Bool = False  # drop records whose source SCF did not converge (QH9-dynamic flags them) from train and val

    @model_validator(mode="after")
    def _check(self):
        if (self.path is None) == (self.recipe is None):
            raise invalid(None, f"give exactly one of 'path' (a dataset store) or 'recipe' (one of "
                          f"{', '.join(recipe_names())}), got path={self.path!r}, recipe={self.recipe!r}")
        if self.recipe is not None:
            known = recipe_names()
            if self.recipe not in known:
                raise invalid("recipe", f"unknown recipe {self.recipe!r}; allowed: {', '.join(known)}")
            if self.n is None or self.n < 3:
                raise invalid("n", f"a recipe needs the number of structures n >= 3, got {self.n!r}")
        elif self.n is not None:
            raise invalid("n", "only used with 'recipe'; a store 'path' has its own size")
        return self


class SplitConfig(StrictModel):
    """A named split of the store and which of its parts train, select and test."""

    name: Optional[str] = None  # None: the store's only split
    train: Part = "train"
    val: Part = "val"
    test: Part = "test"
    # [f_train, f_val]: ignore the store's named splits and split all records at random
    # (seeded by ``seed``), the rest test. For small replicas only; benchmarks use named splits.
    fractions: Optional[tuple[Number, Number]] = None

    @field_validator("fractions", mode="before")
    @classmethod
    def _fractions(cls, f):
        if f is None:
            return f
        ok = isinstance(f, (list, tuple)) and len(f) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < 1 for x in f) and sum(f) < 1
        if not ok:
            raise invalid(None, f"must be [f_train, f_val], each in (0, 1), summing to < 1; got {f!r}")
        return tuple(float(x) for x in f)

    @model_validator(mode="after")
    def _check(self):
        if self.fractions is not None and self.name is not None:
            raise invalid(None, "give 'name' (a split of the store) or 'fractions', not both")
        return self


class LossConfig(StrictModel):
    """``L = mae_weight L^mae + mse_weight L^mse``, each ``L^kind`` the TraceGrad loss of
    :class:`hamnet.loss.HamiltonianLoss` with that kind of error.

    QH9 trains on the sum of the MAE and the MSE of the block entries. The TraceGrad trace
    term ``L_T`` joins the block term ``L_H`` of each kind (ignored for ``tracegrad: false``):

    * ``trace_mode: balanced`` (default, as the TraceGrad authors train):
      ``(1 - trace_lambda) L_H + trace_lambda sg(L_H / L_T) L_T``, ``trace_lambda`` in
      ``[0, 1)`` (default 0.2). ``sg`` stops the gradient, so the trace term's value is
      ``trace_lambda L_H``, and it can never outweigh the block term;
    * ``trace_mode: fixed``: ``L_H + trace_weight L_T`` (hamnet before 0.2; ``trace_weight``
      is used only here).

    Spectral terms (:mod:`hamnet.spectral`), off by default, are added as
    ``+ eig_weight L_eig + density_weight L_P``:

    * ``eig_weight`` (per Hartree, >= 0): weight of ``L_eig``, the mean absolute error in
      Hartree of the ``nocc`` occupied and ``eig_virtual`` lowest virtual orbital energies;
    * ``eig_virtual`` (int >= 0, default 2): virtual orbitals in ``L_eig`` (capped at
      ``nao - nocc`` per molecule);
    * ``density_weight`` (>= 0): weight of ``L_P``, the dimensionless occupied-subspace
      loss ``||P_pred - P_ref||_F^2 / (2 nocc)`` in ``[0, 1]`` of the Löwdin-basis projectors.

    Either weight > 0 makes the run compute ``S^-1/2`` once per training structure (from
    the store's ``S``, or PySCF's ``int1e_ovlp`` where a record has none) and one batched
    eigendecomposition of the prediction and of the target per step.
    """

    mae_weight: Number = Field(1.0, ge=0)
    mse_weight: Number = Field(1.0, ge=0)
    trace_mode: Literal["balanced", "fixed"] = "balanced"  # how L_T joins L_H (hamnet.loss)
    trace_lambda: Number = Field(0.2, ge=0, lt=1)  # balanced: (1-lam) L_H + lam sg(L_H/L_T) L_T
    trace_weight: Number = Field(1.0, ge=0)  # fixed: L_H + trace_weight L_T
    eig_weight: Number = Field(0.0, ge=0)
    eig_virtual: Int = Field(2, ge=0)
    density_weight: Number = Field(0.0, ge=0)

    @property
    def spectral(self) -> bool:
        """Whether a spectral term is on (the training graphs then carry ``S^-1/2``)."""
        return self.eig_weight > 0 or self.density_weight > 0

    @model_validator(mode="after")
    def _check(self):
        if self.mae_weight == 0 and self.mse_weight == 0:
            raise invalid(None, "mae_weight and mse_weight cannot both be 0")
        return self


class OptimConfig(StrictModel):
    """AdamW, gradient clipping and an exponential moving average (EMA) of the weights."""

    lr: Number = Field(5e-3, gt=0)
    weight_decay: Number = Field(0.0, ge=0)
    betas: tuple[Number, Number] = (0.9, 0.999)
    batch_size: PosInt = 8  # molecules per optimizer step (per process under torchrun)
    clip_grad_norm: Optional[Number] = Field(10.0, gt=0)  # None: no clipping
    ema_decay: Optional[Number] = Field(0.99, ge=0, lt=1)  # None: no EMA

    @field_validator("betas", mode="before")
    @classmethod
    def _betas(cls, b):
        ok = isinstance(b, (list, tuple)) and len(b) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1 for x in b)
        if not ok:
            raise invalid(None, f"must be two numbers in [0, 1), got {b!r}")
        return tuple(float(x) for x in b)


class ScheduleConfig(StrictModel):
    """Linear warmup over ``warmup_steps``, then decay to ``min_lr_ratio * lr`` at the limit.

    The decay follows the training progress ``max(step / max_steps, minutes / max_minutes)``,
    so a run limited by wall time decays over its wall time.
    """

    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: Int = Field(50, ge=0)
    min_lr_ratio: Number = Field(0.02, ge=0, le=1)


class LimitsConfig(StrictModel):
    """When training stops: after ``max_steps`` optimizer steps or ``max_minutes`` of training.

    ``clock`` says what a minute is. ``wall`` (the default): elapsed real time. ``cpu``: the
    training process's CPU time (``time.process_time``, all its threads summed). With one
    thread, a CPU minute is what a wall minute would be on a free core, so runs that share
    a busy machine still get equal compute. Validation time is never training time.
    """

    max_steps: Optional[Int] = Field(None, ge=0)
    max_minutes: Optional[Number] = Field(2.5, ge=0)
    clock: Literal["wall", "cpu"] = "wall"

    @model_validator(mode="after")
    def _check(self):
        if self.max_steps is None and self.max_minutes is None:
            raise invalid(None, "set max_steps, max_minutes, or both")
        return self


class EvalConfig(StrictModel):
    """Validation during training: every ``every_steps`` steps, on at most ``max_val`` molecules."""

    every_steps: PosInt = 100
    max_val: Optional[PosInt] = None
    metric: Literal["H_mae", "H_diag_mae", "H_offdiag_mae", "eps_occ_mae", "psi_cos", "homo_mae", "lumo_mae",
                    "gap_mae", "density_mae"] = "H_mae"  # selects best.pt; psi_cos: higher is better, others lower
    batch_size: PosInt = 16


class AugmentConfig(StrictModel):
    """Random rotations of every training batch: positions ``x -> R x`` and target blocks
    ``F -> D(R) F D(R)^T`` (:func:`hamnet.symmetry.rotate_batch`), one Haar-random ``R``
    per molecule and step. How a non-equivariant backbone learns rotational symmetry.
    """

    rotations: Optional[Bool] = None  # null: on for a non-equivariant backbone, off for the equivariant one
    inversion: Bool = False  # with rotations: also improper rotations (-R), with probability 1/2

    @model_validator(mode="after")
    def _check(self):
        if self.inversion and self.rotations is False:
            raise invalid("inversion", "needs rotations (set augment.rotations: true or null)")
        return self


_SECTIONS = ("data", "split", "model", "loss", "augment", "optim", "schedule", "limits", "eval")
#: Keys of the ``model`` section that are not hyperparameters of the backbone.
_MODEL_EXTRA = {"elements": "auto", "fit_reference": True, "init_from": None}


class TrainConfig(StrictModel):
    """A whole training run (see the module docstring for the YAML layout)."""

    run_dir: Optional[str] = None
    data: DataConfig = Field(default_factory=dict, validate_default=True)  # required: path or recipe
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: dict = Field(default_factory=dict, validate_default=True)  # resolved: elements, fit_reference, backbone hyperparameters
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    precision: Literal["float32", "float64"] = "float32"
    seed: Int = 0
    device: str = "auto"

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, values):
        """An empty YAML section (``optim:``) means the defaults."""
        if isinstance(values, Mapping):
            values = {k: ({} if v is None and k in _SECTIONS else v) for k, v in values.items()}
        return values

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        if v != "auto" and not (v == "cpu" or v.startswith("cuda")):
            raise invalid(None, f"allowed values are auto, cpu, cuda, cuda:N; got {v!r}")
        return v

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, model):
        return _resolve_model(model)

    # ---- views -----------------------------------------------------------------------

    def model_hyperparameters(self) -> dict:
        """The ``model`` section without the training-only keys (for ``build_model``)."""
        return {k: v for k, v in self.model.items() if k not in _MODEL_EXTRA}

    def to_dict(self) -> dict:
        d = self.model_dump()
        d["optim"]["betas"] = list(d["optim"]["betas"])
        if d["split"]["fractions"] is not None:
            d["split"]["fractions"] = list(d["split"]["fractions"])
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _resolve_model(model: Any) -> dict:
    """The ``model`` section with every default filled in (validated by the backbone's config)."""
    from hamnet.nn.config import model_config

    if model is None:
        model = {}
    if not isinstance(model, Mapping):
        raise invalid(None, f"must be a mapping of hyperparameters, got {type(model).__name__}")
    out = {**_MODEL_EXTRA, **dict(model)}
    el = out["elements"]
    if not (el == "auto" or (isinstance(el, list) and el and all(isinstance(e, (str, int)) for e in el))):
        raise invalid("elements", f"must be 'auto' or a list of element symbols, got {el!r}")
    if not isinstance(out["fit_reference"], bool):
        raise invalid("fit_reference", f"must be true or false, got {out['fit_reference']!r}")
    if out["init_from"] is not None and not (isinstance(out["init_from"], str) and out["init_from"]):
        raise invalid("init_from", f"must be a model file, checkpoint or shipped-model name, got {out['init_from']!r}")
    hyper = {k: v for k, v in out.items() if k not in _MODEL_EXTRA}
    resolved = model_config(hyper, "model", extra_keys=tuple(_MODEL_EXTRA)).to_dict()
    return {"elements": el, "fit_reference": out["fit_reference"], "init_from": out["init_from"], **resolved}


# ---- entry points -----------------------------------------------------------------------------


def default_config() -> TrainConfig:
    """The built-in default job: a 60-structure md17-water replica, ~2.5 min of training.

    60 structures under QHNet's scaled water split would leave 6 for training, so the
    default job splits them 70/10/20 at random instead (``split.fractions``).
    """
    return load_config(
        {
            "run_dir": "runs/md17-water-default",
            "data": {"recipe": "md17-water", "n": 60, "root": "data", "workers": 2},
            "split": {"fractions": [0.7, 0.1]},
        }
    )


def load_config(source: Union[str, Path, Mapping, TrainConfig, None]) -> TrainConfig:
    """Read and validate a config.

    Parameters
    ----------
    source : path to a YAML file, a mapping, a TrainConfig, or None (the default job)

    Raises
    ------
    ConfigError
        Unreadable YAML, a wrong key, type or value (the message names the key).
    MissingFileError
        No such config file (a ``FileNotFoundError``).
    """
    if source is None:
        return default_config()
    if isinstance(source, TrainConfig):
        source = source.to_dict()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise MissingFileError(f"no config file at {path}")
        try:
            source = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if isinstance(source, Mapping):
        source = copy.deepcopy(dict(source))
    return validate(TrainConfig, source, "")


def config_diff(a: TrainConfig, b: TrainConfig, ignore=("run_dir", "limits", "eval", "device")) -> list:
    """Dotted keys whose values differ between two configs (sections in ``ignore`` skipped)."""

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    skip = lambda k: k.split(".")[0] in ignore  # noqa: E731
    return sorted(k for k in set(fa) | set(fb) if not skip(k) and fa.get(k) != fb.get(k))
