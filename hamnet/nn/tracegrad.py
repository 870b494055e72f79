"""TraceGrad (arXiv 2405.05722): invariant trace supervision and gradient-induced features.

For a block ``H_b`` of the Hamiltonian and one of its shell pairs ``s`` (radial functions
``(a, b)`` of angular momenta ``(l1, l2)``), the trace ``T_s = tr(H_s H_s^T)`` of the
``(2l1+1) x (2l2+1)`` sub-block is invariant under rotations and inversion, because
``H_s -> D_l1 H_s D_l2^T`` with orthogonal ``D``. These traces are extra labels.

Normalization
    The label is ``t_s = sqrt(T_s / ((2l1+1)(2l2+1)))``: the root-mean-square entry of
    the sub-block, in Hartree. Labels then live on the same scale and in the same unit
    as the matrix entries whatever ``l``, so the block loss and the trace loss can be
    weighted one to one (see :mod:`hamnet.loss`).

Mechanism, on equivariant features ``f`` of nodes (after every interaction layer, or
after the last one only) and of pairs (the final pair features):

1. invariants of ``f`` (``encoder``), from a learned equivariant projection ``x`` of ``f`` to
   ``channels`` copies of each irrep type:

   * ``"gram"``: the ``0e`` channels of ``x`` and every Clebsch-Gordan self-contraction
     ``x_a . x_b / (2l+1)`` of two channels of the same irrep type;
   * ``"cg"``: a learnable Clebsch-Gordan contraction, e3nn's
     ``FullyConnectedTensorProduct(x, x -> n x 0e)`` (as the TraceGrad authors' code), plus
     the ``0e`` channels of ``x``;

2. ``z = MLP(LayerNorm(invariants))``, a deep SiLU network (any nonlinearity is allowed
   on invariants);
3. an invariant decoder predicts ``t`` from ``z`` (trained by the trace loss), plus an
   optional learned per-element (node) or per-element-pair (pair) reference; or, with
   ``decode=False``, the caller decodes ``z`` (e.g. the concatenated codes of all layers);
4. ``v = d(sum z)/df`` by autograd: an equivariant vector with the irreps of ``f``,
   because ``z`` is an invariant function of ``f``;
5. ``f' = f + g(v)`` (``combine``), per sample and per irrep type ``k`` (norms and means run
   over that type's channels and components, so every scale below is invariant):

   * ``"rms"``: ``g(v_k) = alpha_k v_k / sqrt(mean(v_k^2) + eps)``, ``alpha_k`` learnable.
     Near ``v = 0`` the map is linear with slope ``alpha_k / sqrt(eps)``, so ``eps`` (default
     ``1e-4``) bounds the gradient that the double backward sees there;
   * ``"plain"``: ``g(v) = v`` (the authors' DeepH-E3 variant);
   * ``"normtied"``: ``g(v_k) = alpha_k sg(|f_k| / (|v_k| + eps)) v_k`` with ``sg`` the stop
     gradient (the authors' NextHAM variant uses ``alpha = 0.2``): the update is a fixed
     fraction of the feature norm, and no gradient flows through the ratio.

Gradients are enabled locally, so this works under ``torch.no_grad()``; the graph of
``v`` is kept (``create_graph=True``) exactly when the caller records gradients.
"""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import nn

from hamnet.nn.radial import mlp

__all__ = ["ShellPairTraces", "InvariantEncoder", "TraceGrad", "ENCODERS", "COMBINES"]


class ShellPairTraces(nn.Module):
    """Normalized shell-pair traces of padded blocks (see the module docstring).

    Parameters
    ----------
    slot_pair_id : (n_pad, n_pad) int array
        :attr:`hamnet.basis.OrbitalBasis.slot_pair_id`.
    n_slot_pairs : int
        :attr:`hamnet.basis.OrbitalBasis.n_slot_pairs`.
    """

    def __init__(self, slot_pair_id, n_slot_pairs: int):
        super().__init__()
        sp = torch.as_tensor(slot_pair_id, dtype=torch.long).reshape(-1)  # [n_pad^2]
        assign = torch.zeros(sp.numel(), n_slot_pairs)
        assign[torch.arange(sp.numel()), sp] = 1.0
        self.register_buffer("assign", assign, persistent=False)  # [n_pad^2, n_sp]
        self.register_buffer("size", assign.sum(0), persistent=False)  # [n_sp] (2l1+1)(2l2+1), exact in any dtype
        self.n_slot_pairs = n_slot_pairs

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        """``(..., n_pad, n_pad)`` blocks (Hartree) -> ``(..., n_sp)`` RMS entries (Hartree)."""
        sq = blocks.pow(2).flatten(-2)  # [..., n_pad^2]
        like = dict(dtype=sq.dtype, device=sq.device)
        T = sq @ self.assign.to(**like)  # [..., n_sp] tr(H_s H_s^T), Hartree^2
        return torch.sqrt((T / self.size.to(**like)).clamp_min(1e-300))

    def mask(self, block_mask: torch.Tensor) -> torch.Tensor:
        """``(..., n_pad, n_pad)`` bool entry mask -> ``(..., n_sp)`` bool: shell pair exists."""
        return (block_mask.flatten(-2).to(self.assign.dtype) @ self.assign) > 0


ENCODERS = ("gram", "cg")
COMBINES = ("rms", "plain", "normtied")


class InvariantEncoder(nn.Module):
    """``z = MLP(LayerNorm(invariants(f)))`` for features ``f`` with irreps ``irreps_in``.

    Parameters
    ----------
    irreps_in : o3.Irreps
    channels : int
        Copies of each irrep type after the equivariant projection; gives
        ``channels (channels + 1) / 2`` Gram contractions per type (``"gram"``).
    hidden, depth : int
        Width and number of hidden layers of the MLP.
    dim_z : int
        Size of the invariant code ``z``.
    kind : {"gram", "cg"}
        Gram self-contractions, or a learnable Clebsch-Gordan contraction to
        ``len(types) * channels (channels + 1) / 2`` scalars (the same count).
    """

    def __init__(self, irreps_in, channels: int, hidden: int, depth: int, dim_z: int, kind: str = "gram"):
        super().__init__()
        if kind not in ENCODERS:
            raise ValueError(f"invariant encoder must be one of {ENCODERS}, got {kind!r}")
        self.kind = kind
        self.irreps_in = o3.Irreps(irreps_in)
        types = sorted({ir for _, ir in self.irreps_in})
        self.irreps_proj = o3.Irreps([(channels, ir) for ir in types])
        self.proj = o3.Linear(self.irreps_in, self.irreps_proj)
        iu = torch.triu_indices(channels, channels)
        self.register_buffer("iu", iu, persistent=False)  # [2, channels (channels+1)/2]
        n_scalar = sum(channels for ir in types if ir == o3.Irrep("0e"))
        n_contract = len(types) * iu.shape[1]
        if kind == "cg":
            self.contract = o3.FullyConnectedTensorProduct(self.irreps_proj, self.irreps_proj,
                                                           o3.Irreps(f"{n_contract}x0e"))
        self.n_invariants = n_scalar + n_contract
        self.norm = nn.LayerNorm(self.n_invariants)
        self.mlp = mlp(self.n_invariants, hidden, dim_z, depth)

    def invariants(self, f: torch.Tensor) -> torch.Tensor:
        """``(n, irreps_in.dim)`` -> ``(n, n_invariants)``, invariant under O(3)."""
        x = self.proj(f)  # [n, irreps_proj.dim]
        parts = []
        for (mul, ir), sl in zip(self.irreps_proj, self.irreps_proj.slices()):
            xi = x[:, sl].reshape(-1, mul, ir.dim)  # [n, channels, 2l+1]
            if ir == o3.Irrep("0e"):
                parts.append(xi[:, :, 0])
            if self.kind == "gram":
                gram = torch.einsum("nai,nbi->nab", xi, xi) / ir.dim  # [n, channels, channels]
                parts.append(gram[:, self.iu[0], self.iu[1]])
        if self.kind == "cg":
            parts.append(self.contract(x, x))  # [n, n_contract]
        return torch.cat(parts, dim=-1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``(n, irreps_in.dim)`` -> ``z`` of shape ``(n, dim_z)``."""
        return self.mlp(self.norm(self.invariants(f)))


class TraceGrad(nn.Module):
    """Invariant code, trace decoder and gradient-induced equivariant update ``f -> f + g(v)``.

    Parameters
    ----------
    irreps : o3.Irreps
        Irreps of ``f`` (one entry per irrep type, i.e. simplified).
    n_traces : int
        Number of trace outputs (shell pairs of a block).
    channels, hidden, depth, dim_z : int
        Encoder sizes (see :class:`InvariantEncoder`).
    alpha : float
        Initial ``alpha_k`` of every irrep type (``"rms"``, ``"normtied"``; learnable).
    eps : float
        Regularizer of the normalization of ``v`` (see the module docstring).
    n_references : int
        Rows of the learned ``(n_references, n_traces)`` trace reference added to the
        decoder output (0: none), e.g. one per element or per element pair.
    encoder : {"gram", "cg"}
    combine : {"rms", "plain", "normtied"}
    decode : bool
        ``False``: no decoder (and no reference); the caller decodes ``z``.

    Attributes
    ----------
    stats : dict
        ``v_over_f`` and ``update_over_f``: ``|v| / |f|`` and ``|g(v)| / |f|`` (RMS over the
        last batch; detached 0-d tensors); diagnostics for the training log.
    """

    def __init__(self, irreps, n_traces, channels, hidden, depth, dim_z, alpha, eps, n_references=0,
                 encoder: str = "gram", combine: str = "rms", decode: bool = True):
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"TraceGrad combine must be one of {COMBINES}, got {combine!r}")
        self.irreps = o3.Irreps(irreps)
        self.combine = combine
        self.encoder = InvariantEncoder(self.irreps, channels, hidden, depth, dim_z, encoder)
        self.decoder = mlp(dim_z, hidden, n_traces, 1) if decode else None
        if combine != "plain":
            self.alpha = nn.Parameter(torch.full((len(self.irreps),), float(alpha)))
        self.eps = float(eps)
        self.reference = nn.Parameter(torch.zeros(n_references, n_traces)) if (n_references and decode) else None
        self.stats: dict = {}

    @torch.no_grad()
    def set_reference(self, values: torch.Tensor) -> None:
        """Set the ``(n_references, n_traces)`` reference of the decoded traces (Hartree)."""
        if self.reference is None or tuple(values.shape) != tuple(self.reference.shape):
            have = None if self.reference is None else tuple(self.reference.shape)
            raise ValueError(f"trace reference of shape {tuple(values.shape)} does not fit {have}")
        self.reference.copy_(values)

    def update(self, f: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``g(v)`` of the module docstring: ``(n, irreps.dim)`` each -> ``(n, irreps.dim)``."""
        if self.combine == "plain":
            return v
        parts = []
        for k, ((mul, ir), sl) in enumerate(zip(self.irreps, self.irreps.slices())):
            vk = v[:, sl].reshape(-1, mul, ir.dim)  # [n, mul, 2l+1]
            if self.combine == "rms":
                scale = torch.rsqrt(vk.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)  # [n, 1, 1]
            else:  # normtied
                fk = f[:, sl].reshape(-1, mul, ir.dim)
                norm = lambda x: x.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()  # noqa: E731
                scale = (norm(fk) / (norm(vk) + self.eps)).detach()  # [n, 1, 1]
            parts.append((self.alpha[k] * vk * scale).reshape(-1, mul * ir.dim))
        return torch.cat(parts, dim=-1)

    def forward(self, f: torch.Tensor, ref_index: Optional[torch.Tensor] = None):
        """``(n, irreps.dim)`` -> ``(f' (n, irreps.dim), t (n, n_traces) or None, z (n, dim_z))``.

        ``ref_index`` ``(n,)`` selects the reference row of each input (needed when the
        module has a reference). ``t`` is ``None`` for ``decode=False``.
        """
        record = torch.is_grad_enabled()
        with torch.enable_grad():
            x = f if f.requires_grad else f.detach().requires_grad_(True)
            z = self.encoder(x)  # [n, dim_z]
            (v,) = torch.autograd.grad(z.sum(), x, create_graph=record)  # [n, irreps.dim]
        if not record:
            z = z.detach()
        t = None
        if self.decoder is not None:
            t = self.decoder(z)  # [n, n_traces]
            if self.reference is not None:
                if ref_index is None:
                    raise ValueError("this TraceGrad has a trace reference: pass ref_index")
                t = t + self.reference[ref_index]
        g = self.update(f, v)
        with torch.no_grad():  # detached 0-d tensors: no device sync until someone reads them
            rf = f.detach().pow(2).mean().sqrt()
            self.stats = {"v_over_f": v.detach().pow(2).mean().sqrt() / rf,
                          "update_over_f": g.detach().pow(2).mean().sqrt() / rf}
        return f + g, t, z
