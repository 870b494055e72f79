"""Pretrained models shipped inside the package, loadable by name.

Each shipped model is a model file (``hamnet/pretrained/<name>.pt``, the format of
:func:`hamnet.model.save_model`) with a model card beside it (``<name>.md``: data, level
of theory, measured errors, SCF-cycle ratio, training command, licence). The index
``hamnet/pretrained/index.json`` lists them with the basis, functional and elements
stored in each file, so that listing needs no torch; a test checks that the index and
the files agree.

    >>> import hamnet
    >>> [m["name"] for m in hamnet.pretrained_models()]          # doctest: +SKIP
    ['qm9-b3lyp5-def2svp']
    >>> model = hamnet.load_model("qm9-b3lyp5-def2svp")            # doctest: +SKIP

:func:`default_model` picks the shipped model for a molecule's basis and elements
(what :func:`hamnet.scf.predict_guess` uses when it is given no model).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable, Optional

from hamnet.errors import HamnetError

#: Folder of the shipped models (inside the installed package).
PRETRAINED_DIR = Path(__file__).with_name("pretrained")
INDEX_NAME = "index.json"
#: A held-out QM9 molecule (not in the shipped model's training data) for first runs.
EXAMPLE_MOLECULE = PRETRAINED_DIR / "examples" / "qm9-example.xyz"


class PretrainedError(HamnetError, ValueError):
    """No shipped model fits the request (the message lists the ones that exist)."""


def _normal_basis(basis: str) -> str:
    return str(basis).lower().replace("-", "").replace("_", "")


def _read_index(folder: Path) -> tuple:
    path = folder / INDEX_NAME
    if not path.is_file():
        return ()
    try:
        entries = json.loads(path.read_text())["models"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PretrainedError(f"{path} is not a valid index of shipped models ({exc})") from exc
    return tuple(dict(e) for e in entries)


@functools.lru_cache(maxsize=None)
def _index(folder: str) -> tuple:
    return _read_index(Path(folder))


def pretrained_models(folder: Optional[Path] = None) -> list[dict]:
    """The shipped models: ``[{"name", "basis", "xc", "elements", "file", "card", ...}]``.

    ``elements`` are element symbols; ``file`` and ``card`` are absolute paths.
    """
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    out = []
    for e in _index(str(folder)):
        e = dict(e)
        e["file"] = str(folder / e["file"])
        e["card"] = str(folder / e["card"])
        out.append(e)
    return out


def describe_shipped(folder: Optional[Path] = None) -> str:
    """One line naming the shipped models with their functional, basis and elements."""
    return _describe(pretrained_models(folder))


def _describe(models: list[dict]) -> str:
    if not models:
        return "no models are shipped with this hamnet"
    return "shipped models: " + "; ".join(
        f"{m['name']} ({m['xc']}/{m['basis']}, elements {' '.join(m['elements'])})" for m in models
    )


def find_pretrained(name: str, folder: Optional[Path] = None) -> Optional[dict]:
    """The index entry of shipped model ``name``, or ``None``."""
    for m in pretrained_models(folder):
        if m["name"] == name:
            return m
    return None


def load_pretrained(name: str, map_location="cpu", folder: Optional[Path] = None):
    """Load the shipped model ``name`` (:class:`PretrainedError` if there is none)."""
    entry = find_pretrained(name, folder)
    if entry is None:
        raise PretrainedError(f"no shipped model named {name!r}; {describe_shipped(folder)}")
    return _cached_load(entry["file"], name, str(map_location))


@functools.lru_cache(maxsize=4)
def _cached_load(path: str, name: str, map_location: str):
    # One instance per file and process: predict_guess(mf) without a model reuses it.
    from hamnet.model import load_model

    model = load_model(path, map_location=map_location)
    model.eval()
    model.shipped_name = name
    return model


def default_model(basis: str, elements: Iterable, folder: Optional[Path] = None):
    """The shipped model for ``basis`` whose elements cover ``elements``.

    Parameters
    ----------
    basis : str
        PySCF basis name (``"def2-svp"``; case, ``-`` and ``_`` do not matter).
    elements : iterable of int or str
        The molecule's elements.

    Raises
    ------
    PretrainedError
        No shipped model has this basis and all these elements; the message names the
        shipped models.
    """
    from hamnet.basis import atomic_number
    from pyscf.data.elements import ELEMENTS

    symbols = sorted({ELEMENTS[atomic_number(e)] for e in elements}, key=atomic_number)
    models = pretrained_models(folder)
    for m in models:
        if _normal_basis(m["basis"]) == _normal_basis(basis) and set(symbols) <= set(m["elements"]):
            return load_pretrained(m["name"], folder=folder)
    raise PretrainedError(
        f"no shipped model for basis {basis!r} and elements {' '.join(symbols)}; "
        f"{_describe(models)}. Train one with 'hamnet train' and pass it as the model"
    )


def write_index(folder: Path) -> Path:
    """(Re)write ``folder/index.json`` from the model files and cards in ``folder``.

    Every ``<name>.pt`` needs a ``<name>.md`` model card; the basis, functional and
    elements are read from the model file itself, so the index cannot disagree with it.
    """
    from pyscf.data.elements import ELEMENTS

    from hamnet.atomic import atomic_write_text
    from hamnet.model import load_model

    folder = Path(folder)
    models = []
    for pt in sorted(folder.glob("*.pt")):
        card = pt.with_suffix(".md")
        if not card.is_file():
            raise PretrainedError(f"{pt} has no model card {card.name} beside it")
        model = load_model(pt)
        title = card.read_text().splitlines()[0].lstrip("# ").strip()
        models.append({
            "name": pt.stem,
            "file": pt.name,
            "card": card.name,
            "basis": str(model.basis.basis),
            "xc": model.xc,
            "elements": [ELEMENTS[z] for z in model.basis.elements],
            "description": title,
        })
    path = atomic_write_text(folder / INDEX_NAME, json.dumps({"models": models}, indent=1) + "\n")
    _index.cache_clear()
    return path
