"""The one config validator: pydantic v2 models with ``extra="forbid"`` and readable errors.

Run configs (:mod:`hamnet.train.config`) and model hyperparameters
(:mod:`hamnet.nn.config`) are :class:`Strict` models. :func:`validate` builds one from a
mapping and turns pydantic's errors into a single :class:`hamnet.errors.ConfigError`
whose message names the key path (``optim.lr``) and what is allowed (the allowed keys
of the section, the allowed values of a choice, the bound of a number). Checks that span
several keys raise :func:`invalid` inside a model validator.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Mapping, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from hamnet.errors import ConfigError

__all__ = ["Strict", "StrictModel", "Int", "PosInt", "Number", "PosNumber", "Bool", "invalid", "validate"]


def _number(value):
    """Numbers as YAML gives them: ints, floats, or strings like ``"5e-3"``; no booleans, NaN or inf."""
    if isinstance(value, bool):
        raise invalid(None, f"must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise invalid(None, f"must be a number, got {value!r}") from None
    if isinstance(value, (int, float)) and not math.isfinite(value):
        raise invalid(None, f"must be a finite number, got {value!r}")
    return value


Int = Annotated[int, Strict()]  # no floats, strings or booleans
PosInt = Annotated[int, Strict(), Field(ge=1)]
Number = Annotated[float, BeforeValidator(_number)]  # ints and "5e-3" accepted
PosNumber = Annotated[float, BeforeValidator(_number), Field(gt=0)]
Bool = Annotated[bool, Strict()]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class _Invalid(ValueError):
    def __init__(self, key: Optional[str], message: str):
        super().__init__(message)
        self.key, self.message = key, message


def invalid(key: Optional[str], message: str) -> ValueError:
    """An error for :func:`validate` to report at ``<section>.<key>`` (``key`` None: the section)."""
    return _Invalid(key, message)


def _path(where: str, loc) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ".".join(([where] if where else []) + parts) or "config"


def _allowed_keys(cls: type[BaseModel], loc) -> tuple[str, list]:
    """The section model at ``loc`` (a nested field path) and its keys, as users spell them."""
    for part in loc:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            cls = ann
    return cls, [f.alias or name for name, f in cls.model_fields.items()]


def _choices(expected: str) -> str:
    return expected.replace("'", "").replace(" or ", ", ")


def _message(cls: type[BaseModel], err: dict, where: str, extra_keys) -> str:
    loc, kind, value, ctx = tuple(err["loc"]), err["type"], err.get("input"), err.get("ctx") or {}
    key = _path(where, loc)
    if kind == "extra_forbidden":
        _, keys = _allowed_keys(cls, loc[:-1])
        section = _path(where, loc[:-1])
        return f"unknown key {key!r}; allowed keys in {section}: {', '.join(list(extra_keys) + keys)}"
    if kind == "value_error" and isinstance(ctx.get("error"), ConfigError):  # a nested validate()
        return str(ctx["error"])
    if kind == "value_error" and isinstance(ctx.get("error"), _Invalid):
        e = ctx["error"]
        full = _path(where, loc + ((e.key,) if e.key else ()))
        return f"{full} {e.message}" if e.message.startswith(("must", "needs")) else f"{full}: {e.message}"
    bounds = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}", "less_than": "< {lt}",
              "less_than_equal": "<= {le}"}
    if kind in bounds:
        return f"{key} must be {bounds[kind].format(**ctx)}, got {value!r}"
    if kind == "literal_error":
        return f"{key}: {value!r} is not allowed; allowed values: {_choices(ctx['expected'])}"
    what = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
            "model": "a mapping of keys", "dict": "a mapping of keys", "tuple": "a list", "list": "a list"}
    for prefix, text in what.items():
        if kind.startswith(prefix) or kind == f"{prefix}_type":
            return f"{key} must be {text}, got {value!r}"
    if kind == "finite_number":
        return f"{key} must be a finite number, got {value!r}"
    return f"{key}: {err['msg']}"


def validate(cls: type[BaseModel], values: Any, where: str = "", extra_keys=()) -> BaseModel:
    """``cls`` built from ``values`` (a mapping), or :class:`ConfigError` naming the first problem.

    ``where`` prefixes key paths (``"model"``); ``extra_keys`` are further keys the caller
    accepts in the same section, listed among the allowed keys of an unknown-key message.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping of keys, got {values!r}")
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(_message(cls, exc.errors()[0], where, extra_keys)) from None
