"""HamiltonianModel: atomic graph -> orbital blocks -> full symmetric H in PySCF AO order.

Batch contract (keys are constants in :mod:`hamnet.keys`; build batches with
:func:`hamnet.graph.molecule_graph` and :func:`hamnet.graph.collate`)
------------------------------------------------------------------------------------
Inputs of ``model(batch)``::

    Z             (n_atoms,) int64           atomic numbers
    pos           (n_atoms, 3) float         positions, Angstrom (cast to the model dtype)
    batch         (n_atoms,) int64           molecule of each atom
    ptr           (n_mol + 1,) int64         atom offsets of the molecules
    pair_index    (2, n_pairs) int64         ordered pairs (i, j), i != j, same molecule,
                                             per molecule in OrbitalBasis.pair_index order
    pair_reverse  (n_pairs,) int64           row of (j, i) for each pair (i, j)
    pair_ptr      (n_mol + 1,) int64         pair offsets of the molecules

Targets, used by :mod:`hamnet.loss` only (``molecule_graph(..., basis=, fock=)``)::

    target_diag     (n_atoms, n_pad, n_pad)  blocks (i, i) of the target, Hartree
    target_offdiag  (n_pairs, n_pad, n_pad)  blocks (i, j) of the target, Hartree

Outputs (a dict)::

    diag                (n_atoms, n_pad, n_pad) Hartree, exactly symmetric, 0 at padding
    offdiag             (n_pairs, n_pad, n_pad) Hartree, offdiag[pair_reverse] == offdiag^T, 0 at padding
    diag_mask           (n_atoms, n_pad, n_pad) bool, entries that exist for (Z_i, Z_i)
    offdiag_mask        (n_pairs, n_pad, n_pad) bool, entries that exist for (Z_i, Z_j)
    diag_trace          (n_atoms, n_sp)  predicted normalized shell-pair traces, Hartree  [TraceGrad only]
    offdiag_trace       (n_pairs, n_sp)  same for pairs                                  [TraceGrad only]
    diag_trace_mask     (n_atoms, n_sp) bool, shell pairs that exist                     [TraceGrad only]
    offdiag_trace_mask  (n_pairs, n_sp) bool, ... and lie within the pair cutoff         [TraceGrad only]

``n_pad = model.basis.n_pad`` and ``n_sp = model.basis.n_slot_pairs``. The full matrix of
molecule ``m`` is ``model.assemble(out, batch)[m]`` ``(nao, nao)`` in PySCF AO order.
Training: ``loss = hamnet.loss.HamiltonianLoss(model.basis)(model(batch), batch)[keys.LOSS]``.

Architecture
------------
NequIP-like backbone (:mod:`hamnet.nn.interaction`): element embedding, Bessel radial
basis with a smooth polynomial cutoff, spherical harmonics up to ``L_max``, channel-wise
tensor-product convolutions and gated nonlinearities, with every irrep type of the
basis's blocks (``L_max`` and parities are derived from ``basis.block_irreps``). Pair
features for every ordered pair (:mod:`hamnet.nn.pair`). TraceGrad
(:mod:`hamnet.nn.tracegrad`) on the final node and pair features, then linear heads to
the block irreps (:mod:`hamnet.nn.heads`). Diagonal blocks are symmetrized as
``(B + B^T)/2`` and off-diagonal ones as ``B_ij <- (B_ij + B_ji^T)/2``, so the assembled H
is exactly symmetric and permutation equivariant.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from e3nn import o3
from torch import nn

import hamnet
from hamnet import keys as K
from hamnet.basis import BasisError, OrbitalBasis
from hamnet.graph import cutoff_edges
from hamnet.nn.base import ModelBase
from hamnet.nn.config import ConfigError, ModelConfig
from hamnet.nn.embedding import ElementEmbedding
from hamnet.nn.heads import BlockHead
from hamnet.nn.pet import PETHamiltonianModel
from hamnet.nn.interaction import Interaction, feature_irreps
from hamnet.nn.pair import PairBlock
from hamnet.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff
from hamnet.nn.tracegrad import ShellPairTraces, TraceGrad
from hamnet.symmetry import RotationAveraged

__all__ = [
    "HamiltonianModel",
    "ModelConfig",
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


class HamiltonianModel(ModelBase):
    """Equivariant model of Fock/Kohn-Sham matrices in one AO basis (see the module docstring).

    Parameters
    ----------
    basis : OrbitalBasis
        Orbital layout: elements, PySCF basis, padded blocks.
    config : ModelConfig
        Hyperparameters.
    xc : str, optional
        Functional of the training data (provenance; ``None`` if unknown).

    Attributes
    ----------
    basis : OrbitalBasis
    config : dict
        Hyperparameters (``ModelConfig.to_dict()``), including ``tracegrad``.
    xc : str or None
    irreps_node, irreps_pair, irreps_sh : e3nn.o3.Irreps
    """

    equivariant = True

    def __init__(self, basis: OrbitalBasis, config: ModelConfig, xc: Optional[str] = None):
        super().__init__(basis, config, xc)
        c = config
        block = basis.block_irreps
        self.lmax = block.lmax  # highest L of the blocks, e.g. 4 for d-d in def2-SVP
        self.irreps_sh = o3.Irreps.spherical_harmonics(self.lmax)
        self.irreps_node = feature_irreps(block, c.num_channels)
        self.embedding = ElementEmbedding(basis.elements, o3.Irreps(f"{c.num_channels}x0e"))
        n_el = self.embedding.n_elements
        self.rbf = BesselBasis(c.cutoff, c.num_radial)
        self.envelope = PolynomialCutoff(c.cutoff)
        layers, irreps = [], self.embedding.irreps_out
        for _ in range(c.num_layers):
            layer = Interaction(
                irreps, self.irreps_sh, self.irreps_node, n_el, c.num_radial, c.radial_hidden, c.avg_num_neighbors
            )
            layers.append(layer)
            irreps = layer.irreps_out
        self.layers = nn.ModuleList(layers)
        self.irreps_node = irreps
        self.pair_rbf = GaussianBasis(c.pair_radial_max, c.num_pair_radial)
        self.pair_envelope = PolynomialCutoff(c.pair_cutoff) if c.pair_cutoff else None
        self.pair_block = PairBlock(irreps, self.irreps_sh, irreps, c.num_pair_radial, c.radial_hidden)
        self.irreps_pair = self.pair_block.irreps_out
        self.traces = ShellPairTraces(basis.slot_pair_id, basis.n_slot_pairs)
        if c.tracegrad:
            tg = dict(
                n_traces=basis.n_slot_pairs, channels=c.tracegrad_channels, hidden=c.tracegrad_hidden,
                depth=c.tracegrad_depth, dim_z=c.tracegrad_dim, alpha=c.tracegrad_alpha, eps=c.tracegrad_eps,
            )
            self.tracegrad_node = TraceGrad(self.irreps_node, n_references=n_el, **tg)
            self.tracegrad_pair = TraceGrad(self.irreps_pair, n_references=n_el * n_el, **tg)
        self.diag_head = BlockHead(self.irreps_node, basis, n_elements=n_el)
        self.offdiag_head = BlockHead(self.irreps_pair, basis)
        masks = torch.tensor(
            np.array([[basis.block_mask(a, b) for b in basis.elements] for a in basis.elements])
        )  # [n_el, n_el, n_pad, n_pad]
        self.register_buffer("block_masks", masks, persistent=False)
        self.register_buffer("trace_masks", self.traces.mask(masks), persistent=False)  # [n_el, n_el, n_sp]
        n_slots = len(basis.pad_ls)
        sp = torch.arange(n_slots * n_slots).reshape(n_slots, n_slots)
        self.register_buffer("slot_pair_transpose", sp.T.reshape(-1), persistent=False)  # [n_sp]

    # ---- properties -------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding.linear.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embedding.linear.weight.device

    # ---- forward ------------------------------------------------------------------------

    def forward(self, batch: dict) -> dict:
        """Predict blocks (and traces) for a batch; see the module docstring for keys."""
        c = self.cfg
        Z = batch[K.Z]
        pos = batch[K.POS].to(self.dtype)  # [n_atoms, 3] Angstrom
        pair_index, reverse = batch[K.PAIR_INDEX], batch[K.PAIR_REVERSE]
        n_pairs = pair_index.shape[1]
        elem, onehot, h = self.embedding(Z, self.dtype)  # [n], [n, n_el], [n, mul]

        edge_index, edge_vec, edge_len = cutoff_edges(pos, pair_index, c.cutoff)
        sh = o3.spherical_harmonics(self.irreps_sh, edge_vec, normalize=True, normalization="component")
        rbf, env = self.rbf(edge_len), self.envelope(edge_len)  # [E, n_rbf], [E]
        for layer in self.layers:
            h = layer(h, onehot, edge_index, sh, rbf, env)  # [n_atoms, irreps_node]

        pvec = pos[pair_index[1]] - pos[pair_index[0]]  # [n_pairs, 3] from i to j
        plen = pvec.norm(dim=-1)
        keep = None
        if c.pair_cutoff is not None:
            keep = torch.nonzero(plen < c.pair_cutoff).squeeze(-1)  # pairs that get a block
            pvec, plen, pidx = pvec[keep], plen[keep], pair_index[:, keep]
        else:
            pidx = pair_index
        psh = o3.spherical_harmonics(self.irreps_sh, pvec, normalize=True, normalization="component")
        g = self.pair_block(h, pidx, psh, self.pair_rbf(plen))  # [n_kept, irreps_pair]

        out = {}
        f_node, f_pair = h, g
        if c.tracegrad:
            n_el = self.embedding.n_elements
            f_node, t_node = self.tracegrad_node(h, elem)  # [n_atoms, node], [n_atoms, n_sp]
            pair_el = elem[pidx[0]] * n_el + elem[pidx[1]]  # element-pair id of each kept pair
            f_pair, t_pair = self.tracegrad_pair(g, pair_el)  # [n_kept, pair], [n_kept, n_sp]
        diag = self.diag_head(f_node, elem)  # [n_atoms, n_pad, n_pad]
        off = self.offdiag_head(f_pair)  # [n_kept, n_pad, n_pad]
        if keep is not None:
            off = off * self.pair_envelope(plen)[:, None, None]
            off = off.new_zeros((n_pairs,) + off.shape[1:]).index_copy(0, keep, off)
        diag = 0.5 * (diag + diag.transpose(-1, -2))
        off = 0.5 * (off + off[reverse].transpose(-1, -2))
        ei, ej = elem[pair_index[0]], elem[pair_index[1]]
        out[K.DIAG_MASK] = self.block_masks[elem, elem]
        out[K.OFFDIAG_MASK] = self.block_masks[ei, ej]
        out[K.DIAG] = diag * out[K.DIAG_MASK]
        out[K.OFFDIAG] = off * out[K.OFFDIAG_MASK]
        if c.tracegrad:
            tT = self.slot_pair_transpose
            t_diag = 0.5 * (t_node + t_node[:, tT])  # shell pair (a, b) and (b, a) of H_ii
            out[K.DIAG_TRACE_MASK] = self.trace_masks[elem, elem]
            out[K.OFFDIAG_TRACE_MASK] = self.trace_masks[ei, ej]
            if keep is not None:
                t_pair = t_pair.new_zeros((n_pairs, t_pair.shape[1])).index_copy(0, keep, t_pair)
                inside = torch.zeros(n_pairs, dtype=torch.bool, device=plen.device)
                out[K.OFFDIAG_TRACE_MASK] = out[K.OFFDIAG_TRACE_MASK] & inside.index_fill(0, keep, True)[:, None]
            t_off = 0.5 * (t_pair + t_pair[reverse][:, tT])  # (a, b) of H_ij is (b, a) of H_ji
            out[K.DIAG_TRACE] = t_diag
            out[K.OFFDIAG_TRACE] = t_off
        return out

    @torch.no_grad()
    def fit_reference(self, graphs: Iterable[dict]) -> None:
        """Initialize the per-element references from target blocks (call before training).

        * Diagonal head: the mean ``0e`` part of each element's diagonal blocks. These
          rotation-invariant components hold e.g. the core-orbital energies, tens of
          Hartree for fluorine; starting from their mean leaves the network to learn the
          environment-dependent rest.
        * TraceGrad (if on): the mean trace label per element (diagonal blocks) and per
          element pair (off-diagonal blocks), so the trace loss starts balanced with the
          block loss instead of being dominated by the large core traces.

        Graphs need :data:`hamnet.keys.TARGET_DIAG` and :data:`hamnet.keys.TARGET_OFFDIAG`.
        """
        head = self.diag_head
        n_el, n_sp = self.embedding.n_elements, self.basis.n_slot_pairs
        f64 = dict(dtype=torch.float64)
        sums, counts = torch.zeros(n_el, len(head.scalar_index), **f64), torch.zeros(n_el, **f64)
        t_node, t_pair = torch.zeros(n_el, n_sp, **f64), torch.zeros(n_el * n_el, n_sp, **f64)
        n_pair = torch.zeros(n_el * n_el, **f64)
        traces = self.traces  # its buffers follow the input's device
        for g in graphs:
            if K.TARGET_DIAG not in g or K.TARGET_OFFDIAG not in g:
                raise ValueError("fit_reference needs graphs with target blocks (molecule_graph(..., fock=...))")
            elem = self.embedding.index(g[K.Z].to(self.device)).cpu()
            diag = g[K.TARGET_DIAG].to(torch.float64).cpu()  # [n, n_pad, n_pad]
            x = self.basis.padded_to_irreps(diag)  # [n, dim]
            sums.index_add_(0, elem, x[:, head.scalar_index.cpu()])
            counts.index_add_(0, elem, torch.ones(len(elem), **f64))
            t_node.index_add_(0, elem, traces(diag))
            i, j = g[K.PAIR_INDEX].cpu()
            pair_el = elem[i] * n_el + elem[j]
            t_pair.index_add_(0, pair_el, traces(g[K.TARGET_OFFDIAG].to(torch.float64).cpu()))
            n_pair.index_add_(0, pair_el, torch.ones(len(pair_el), **f64))
        like = dict(dtype=self.dtype, device=self.device)
        head.set_reference((sums / counts.clamp_min(1.0)[:, None]).to(**like))
        if self.tracegrad:
            self.tracegrad_node.set_reference((t_node / counts.clamp_min(1.0)[:, None]).to(**like))
            self.tracegrad_pair.set_reference((t_pair / n_pair.clamp_min(1.0)[:, None]).to(**like))


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
) -> HamiltonianModel:
    """Build a :class:`HamiltonianModel` with random weights.

    Parameters
    ----------
    basis : str, dict or OrbitalBasis
        PySCF basis name (e.g. ``"def2-svp"``), per-element basis dict, or a layout.
    elements : sequence of str or int
        Elements the model supports (ignored when ``basis`` is an OrbitalBasis).
    tracegrad : bool, optional
        ``False`` builds the baseline: the same backbone and heads without TraceGrad.
        Default: on for ``backbone="equivariant"``, off for the unconstrained ``"pet"``.
    xc : str, optional
        Functional of the data the model will be trained on (stored with the model).
    dtype : torch.dtype, optional
        Parameter dtype (default: torch's default, float32). The model is constructed
        under this default dtype, so e3nn's Clebsch-Gordan constants are exact in
        float64 (calling ``.double()`` afterwards would keep float32-rounded constants).
    **hyperparameters
        Fields of :class:`hamnet.nn.config.ModelConfig`; unknown names raise ConfigError.
    """
    if not isinstance(basis, OrbitalBasis):
        basis = OrbitalBasis(basis, elements)
    config = ModelConfig.from_dict({**hyperparameters, "tracegrad": tracegrad})
    if xc is not None and not isinstance(xc, str):
        raise ConfigError(f"xc must be a functional name (str) or None, got {xc!r}")
    model_class = {"equivariant": HamiltonianModel, "pet": PETHamiltonianModel}[config.backbone]
    with _default_dtype(dtype):
        return model_class(basis, config, xc=xc)


# ---- files ----------------------------------------------------------------------------------

FORMAT = "hamnet-model"
#: 1: equivariant models; 2: adds ``config["backbone"]`` (and the ``pet_*`` hyperparameters).
#: Version-1 files still load (the new keys take their defaults).
FORMAT_VERSION = 2


class ModelFileError(ValueError):
    """A model file that is missing pieces, truncated, or not a hamnet model."""


def model_payload(model: HamiltonianModel) -> dict:
    """Everything needed to rebuild ``model``: plain Python values and CPU tensors."""
    if isinstance(model, RotationAveraged):
        raise TypeError(
            "a RotationAveraged model is a test-time wrapper and is not saved: save the wrapped "
            "model (avg.model) and wrap it again after loading"
        )
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


def model_from_payload(payload, source: str = "payload") -> HamiltonianModel:
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
    try:
        model = build_model(
            payload["basis"], payload["elements"], xc=payload.get("xc"), dtype=dtype, **payload["config"]
        )
    except (ConfigError, BasisError) as exc:
        raise ModelFileError(f"{source}: cannot rebuild the stored model: {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{source}: weights do not fit the stored architecture: {exc}") from exc
    return model


def atomic_torch_save(obj, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A reader sees the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_model(model: HamiltonianModel, path: Union[str, os.PathLike]) -> None:
    """Write ``model`` (format version, hamnet version, basis, elements, xc,
    hyperparameters, dtype, weights) atomically to ``path``."""
    atomic_torch_save(model_payload(model), path)


def load_model(path: Union[str, os.PathLike], map_location="cpu") -> HamiltonianModel:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFileError
        Truncated/corrupted file, a file that is not a hamnet model, or a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError variants
        raise ModelFileError(
            f"{path} is not a readable hamnet model file (truncated or not a torch file?): {exc}"
        ) from exc
    model = model_from_payload(payload, source=str(path))
    return model.to(map_location) if map_location is not None else model
