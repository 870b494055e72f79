"""Run configuration: one YAML file, typed and validated into dataclasses.

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
      tracegrad: true               # ... any field of hamnet.nn.config.ModelConfig
    loss: {mae_weight: 1.0, mse_weight: 1.0, trace_weight: 1.0}
    augment: {rotations: null, inversion: false}  # null: on for backbone pet, off for equivariant
    optim: {lr: 0.005, weight_decay: 0.0, betas: [0.9, 0.999], batch_size: 8,
            clip_grad_norm: 10.0, ema_decay: 0.99}
    schedule: {kind: cosine, warmup_steps: 50, min_lr_ratio: 0.02}
    limits: {max_steps: null, max_minutes: 2.5}   # at least one of them
    eval: {every_steps: 100, max_val: null, metric: H_mae, batch_size: 16}
    precision: float32              # or float64
    seed: 0
    device: auto                    # auto | cpu | cuda | cuda:N

A wrong key or value raises :class:`ConfigError` naming the key (``optim.lr``) and the
allowed keys or values.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

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
    "KNOWN_RECIPES",
    "load_config",
    "default_config",
    "config_diff",
]

#: Recipes of ``hamnet data make`` (checked again against data_tools when it is importable).
KNOWN_RECIPES = (
    "md17-water",
    "md17-ethanol",
    "md17-malondialdehyde",
    "md17-uracil",
    "qh9-stable",
    "qh9-dynamic",
)
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("float32", "float64")
EVAL_METRICS = ("H_mae", "H_diag_mae", "H_offdiag_mae", "eps_occ_mae", "psi_cos")
SPLIT_PARTS = ("train", "val", "test")


class ConfigError(ValueError):
    """A config key or value that is not allowed; the message names it."""


def _choices(*values):
    return {"choices": tuple(values)}


# ---- sections --------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Where the labeled structures come from: a store ``path`` or a ``recipe`` of size ``n``."""

    path: Optional[str] = None
    recipe: Optional[str] = None
    n: Optional[int] = None
    root: str = "data"
    workers: int = 1
    cache: bool = True

    def check(self, where: str) -> None:
        if (self.path is None) == (self.recipe is None):
            raise ConfigError(
                f"{where}: give exactly one of 'path' (a dataset store) or 'recipe' "
                f"(one of {', '.join(KNOWN_RECIPES)}), got path={self.path!r}, recipe={self.recipe!r}"
            )
        if self.recipe is not None:
            known = _recipes()
            if self.recipe not in known:
                raise ConfigError(f"{where}.recipe: unknown recipe {self.recipe!r}; allowed: {', '.join(known)}")
            if self.n is None or self.n < 3:
                raise ConfigError(f"{where}.n: a recipe needs the number of structures n >= 3, got {self.n!r}")
        elif self.n is not None:
            raise ConfigError(f"{where}.n: only used with 'recipe'; a store 'path' has its own size")
        if self.workers < 1:
            raise ConfigError(f"{where}.workers must be >= 1, got {self.workers}")


@dataclass
class SplitConfig:
    """A named split of the store and which of its parts train, select and test."""

    name: Optional[str] = None  # None: the store's only split
    train: str = field(default="train", metadata=_choices(*SPLIT_PARTS))
    val: str = field(default="val", metadata=_choices(*SPLIT_PARTS))
    test: str = field(default="test", metadata=_choices(*SPLIT_PARTS))
    # [f_train, f_val]: ignore the store's named splits and split all records at random
    # (seeded by ``seed``), the rest test. For small replicas only; benchmarks use named splits.
    fractions: Optional[tuple] = None

    def check(self, where: str) -> None:
        f = self.fractions
        if f is None:
            return
        if self.name is not None:
            raise ConfigError(f"{where}: give 'name' (a split of the store) or 'fractions', not both")
        if len(f) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < 1 for x in f) \
                or sum(f) >= 1:
            raise ConfigError(f"{where}.fractions must be [f_train, f_val], each in (0, 1), summing to < 1; got {list(f)}")
        self.fractions = tuple(float(x) for x in f)


@dataclass
class LossConfig:
    """``L = mae_weight (L_H^mae + trace_weight L_T^mae) + mse_weight (L_H^mse + trace_weight L_T^mse)``.

    QH9 trains on the sum of the MAE and the MSE of the block entries; the TraceGrad
    trace term is added to each with ``trace_weight`` (ignored for ``tracegrad: false``).
    """

    mae_weight: float = 1.0
    mse_weight: float = 1.0
    trace_weight: float = 1.0

    def check(self, where: str) -> None:
        for k in ("mae_weight", "mse_weight", "trace_weight"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{where}.{k} must be >= 0, got {getattr(self, k)}")
        if self.mae_weight == 0 and self.mse_weight == 0:
            raise ConfigError(f"{where}: mae_weight and mse_weight cannot both be 0")


@dataclass
class OptimConfig:
    """AdamW, gradient clipping and an exponential moving average (EMA) of the weights."""

    lr: float = 5e-3
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    batch_size: int = 8  # molecules per optimizer step (per process under torchrun)
    clip_grad_norm: Optional[float] = 10.0  # None: no clipping
    ema_decay: Optional[float] = 0.99  # None: no EMA

    def check(self, where: str) -> None:
        if not self.lr > 0:
            raise ConfigError(f"{where}.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"{where}.weight_decay must be >= 0, got {self.weight_decay}")
        b = self.betas
        if len(b) != 2 or not all(isinstance(x, (int, float)) and 0 <= x < 1 for x in b):
            raise ConfigError(f"{where}.betas must be two numbers in [0, 1), got {list(b)}")
        self.betas = tuple(float(x) for x in b)
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be >= 1, got {self.batch_size}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError(f"{where}.clip_grad_norm must be > 0 or null, got {self.clip_grad_norm}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ConfigError(f"{where}.ema_decay must be in [0, 1) or null, got {self.ema_decay}")


@dataclass
class ScheduleConfig:
    """Linear warmup over ``warmup_steps``, then decay to ``min_lr_ratio * lr`` at the limit.

    The decay follows the training progress ``max(step / max_steps, minutes / max_minutes)``,
    so a run limited by wall time decays over its wall time.
    """

    kind: str = field(default="cosine", metadata=_choices(*SCHEDULES))
    warmup_steps: int = 50
    min_lr_ratio: float = 0.02

    def check(self, where: str) -> None:
        if self.warmup_steps < 0:
            raise ConfigError(f"{where}.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"{where}.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class LimitsConfig:
    """When training stops: after ``max_steps`` optimizer steps or ``max_minutes`` of training."""

    max_steps: Optional[int] = None
    max_minutes: Optional[float] = 2.5

    def check(self, where: str) -> None:
        if self.max_steps is None and self.max_minutes is None:
            raise ConfigError(f"{where}: set max_steps, max_minutes, or both")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError(f"{where}.max_steps must be >= 0, got {self.max_steps}")
        if self.max_minutes is not None and not self.max_minutes >= 0:
            raise ConfigError(f"{where}.max_minutes must be >= 0, got {self.max_minutes}")


@dataclass
class EvalConfig:
    """Validation during training: every ``every_steps`` steps, on at most ``max_val`` molecules."""

    every_steps: int = 100
    max_val: Optional[int] = None
    metric: str = field(default="H_mae", metadata=_choices(*EVAL_METRICS))  # selects best.pt
    batch_size: int = 16

    def check(self, where: str) -> None:
        if self.every_steps < 1:
            raise ConfigError(f"{where}.every_steps must be >= 1, got {self.every_steps}")
        if self.max_val is not None and self.max_val < 1:
            raise ConfigError(f"{where}.max_val must be >= 1 or null, got {self.max_val}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class AugmentConfig:
    """Random rotations of every training batch: positions ``x -> R x`` and target blocks
    ``F -> D(R) F D(R)^T`` (:func:`hamnet.symmetry.rotate_batch`), one Haar-random ``R``
    per molecule and step. How a non-equivariant backbone learns rotational symmetry.
    """

    rotations: Optional[bool] = None  # null: on for a non-equivariant backbone, off for the equivariant one
    inversion: bool = False  # with rotations: also improper rotations (-R), with probability 1/2

    def check(self, where: str) -> None:
        if self.inversion and self.rotations is False:
            raise ConfigError(f"{where}.inversion needs rotations (set {where}.rotations: true or null)")


@dataclass
class TrainConfig:
    """A whole training run (see the module docstring for the YAML layout)."""

    run_dir: Optional[str] = None
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: dict = field(default_factory=dict)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    precision: str = field(default="float32", metadata=_choices(*PRECISIONS))
    seed: int = 0
    device: str = "auto"

    def check(self, where: str = "config") -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if hasattr(v, "check"):
                v.check(f"{where}.{f.name}" if where != "config" else f.name)
        self.model = _check_model(self.model)
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device: allowed values are auto, cpu, cuda, cuda:N; got {self.device!r}")

    # ---- views -----------------------------------------------------------------------

    def model_hyperparameters(self) -> dict:
        """The ``model`` section without the training-only keys (for ``build_model``)."""
        return {k: v for k, v in self.model.items() if k not in _MODEL_EXTRA}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["optim"]["betas"] = list(d["optim"]["betas"])
        if d["split"]["fractions"] is not None:
            d["split"]["fractions"] = list(d["split"]["fractions"])
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---- model section: checked against hamnet.nn.config.ModelConfig --------------------------

_MODEL_EXTRA = {"elements": "auto", "fit_reference": True}


def _check_model(model: Any) -> dict:
    from hamnet.nn.config import ConfigError as ModelConfigError
    from hamnet.nn.config import ModelConfig

    if not isinstance(model, Mapping):
        raise ConfigError(f"model must be a mapping of hyperparameters, got {type(model).__name__}")
    out = {**_MODEL_EXTRA, **dict(model)}
    el = out["elements"]
    if not (el == "auto" or (isinstance(el, list) and el and all(isinstance(e, (str, int)) for e in el))):
        raise ConfigError(f"model.elements must be 'auto' or a list of element symbols, got {el!r}")
    if not isinstance(out["fit_reference"], bool):
        raise ConfigError(f"model.fit_reference must be true or false, got {out['fit_reference']!r}")
    hyper = {k: v for k, v in out.items() if k not in _MODEL_EXTRA}
    allowed = ", ".join(list(_MODEL_EXTRA) + [f.name for f in dataclasses.fields(ModelConfig)])
    try:
        resolved = ModelConfig.from_dict(hyper).to_dict()
    except ModelConfigError as exc:
        raise ConfigError(f"model: {exc} (allowed keys: {allowed})") from exc
    return {"elements": el, "fit_reference": out["fit_reference"], **resolved}


def _recipes() -> tuple:
    try:  # the recipe registry of data_tools, when it is installed
        from data_tools import recipes  # type: ignore

        names = getattr(recipes, "RECIPES", None)
        if names:
            return tuple(sorted(names))
    except Exception:  # noqa: BLE001 - data_tools is optional here; fall back to the list
        pass
    return KNOWN_RECIPES


# ---- generic typed construction -------------------------------------------------------------


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", tuple: "a list", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value, tp, key: str):
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-3 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is tuple:
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    elif tp is dict:
        ok = isinstance(value, Mapping) or value is None
        value = dict(value or {}) if ok else value
    if not ok:
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    return value


def _build(cls, values, where: str):
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ConfigError(
            f"unknown key {_join(where, unknown[0])!r}; allowed keys in {where}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        key = _join(where, name)
        kwargs[name] = _coerce(value, hints[name], key)
        choices = fields[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            raise ConfigError(f"{key}: {kwargs[name]!r} is not allowed; allowed values: {', '.join(choices)}")
    return cls(**kwargs)


def _join(where: str, name: str) -> str:
    return name if where == "config" else f"{where}.{name}"

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
    FileNotFoundError
        No such config file.
    """
    if source is None:
        return default_config()
    if isinstance(source, TrainConfig):
        source = source.to_dict()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}")
        try:
            source = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if source is None:
            source = {}
    cfg = _build(TrainConfig, copy.deepcopy(dict(source)) if isinstance(source, Mapping) else source, "config")
    cfg.check()
    return cfg


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
