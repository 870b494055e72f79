"""Training loss of the TraceGrad paper: the block term ``L_H`` and the trace term ``L_T``.

* ``L_H`` compares predicted and target blocks over the entries that exist (the padded
  layout's masks), i.e. over every entry of every molecule's full ``(nao, nao)`` matrix
  exactly once. Unit: Hartree^2 (``mse``) or Hartree (``mae``).
* ``L_T`` compares the predicted normalized shell-pair traces with those of the target
  blocks, over the shell pairs that exist: the final node and pair traces and, for a
  model with TraceGrad in every layer, the traces each hidden layer decodes (every code
  ``z`` is supervised). The label of a shell pair ``s`` of a block ``H_b`` is
  ``t_s = sqrt(tr(H_s H_s^T) / ((2l1+1)(2l2+1)))``, the RMS entry of the sub-block (see
  :mod:`hamnet.nn.tracegrad`), so it has the unit and the scale of the matrix entries.

How the two are combined (``mode``):

* ``"balanced"`` (default; the TraceGrad authors' training script):
  ``L = (1 - lam) L_H + lam * sg(L_H / L_T) * L_T`` with ``sg`` the stop gradient and
  ``lam = 0.2``. The trace term's value is always ``lam L_H`` (so ``L`` equals ``L_H``
  numerically), and its gradient is ``lam L_H / L_T`` times that of ``L_T``: the trace
  term never outweighs the block term, whatever the scale of the traces.
* ``"fixed"``: ``L = L_H + trace_weight * L_T``. Both terms are means over their own
  elements (entries, shell pairs) in the same unit, so ``trace_weight = 1`` weights an
  entry error and a trace error equally.

A model built with ``tracegrad=False`` has no trace outputs and ``L = L_H`` in both modes.
"""

from __future__ import annotations

import torch
from torch import nn

from hamnet.errors import HamnetError
from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.nn.tracegrad import ShellPairTraces

__all__ = ["HamiltonianLoss", "LossError"]

KINDS = ("mse", "mae")
MODES = ("balanced", "fixed")


class LossError(HamnetError, ValueError):
    """Inputs the loss cannot use (missing targets, wrong shapes, bad options)."""


def _reduce(err: torch.Tensor, kind: str) -> torch.Tensor:
    if err.numel() == 0:
        return err.sum()  # 0 with a gradient path
    return err.pow(2).mean() if kind == "mse" else err.abs().mean()


class HamiltonianLoss(nn.Module):
    """The block term, the trace term and their combination for a model output and its batch.

    Parameters
    ----------
    basis : OrbitalBasis
        The model's basis (``model.basis``), for the shell pairs of the trace labels.
    trace_weight : float
        ``lambda`` of ``L_H + lambda L_T`` (>= 0) in ``mode="fixed"``.
    kind : {"mse", "mae"}
        Squared or absolute errors, for both terms.
    mode : {"balanced", "fixed"}
        How ``L_T`` joins ``L_H`` (see the module docstring).
    trace_lambda : float
        ``lam`` of ``mode="balanced"``, in ``[0, 1)``.
    """

    def __init__(self, basis: OrbitalBasis, trace_weight: float = 1.0, kind: str = "mse",
                 mode: str = "balanced", trace_lambda: float = 0.2):
        super().__init__()
        if kind not in KINDS:
            raise LossError(f"loss kind must be one of {KINDS}, got {kind!r}")
        if mode not in MODES:
            raise LossError(f"trace loss mode must be one of {MODES}, got {mode!r}")
        if not isinstance(trace_weight, (int, float)) or trace_weight < 0:
            raise LossError(f"trace_weight must be a number >= 0, got {trace_weight!r}")
        if not isinstance(trace_lambda, (int, float)) or not 0 <= trace_lambda < 1:
            raise LossError(f"trace_lambda must be a number in [0, 1), got {trace_lambda!r}")
        self.kind = kind
        self.mode = mode
        self.trace_weight = float(trace_weight)
        self.trace_lambda = float(trace_lambda)
        self.traces = ShellPairTraces(basis.slot_pair_id, basis.n_slot_pairs)
        self.n_pad = basis.n_pad

    def target_traces(self, blocks: torch.Tensor) -> torch.Tensor:
        """``(n, n_pad, n_pad)`` target blocks (Hartree) -> ``(n, n_sp)`` trace labels (Hartree)."""
        return self.traces(blocks)

    def forward(self, out: dict, batch: dict) -> dict:
        """Loss and its parts.

        Parameters
        ----------
        out : dict
            ``model(batch)``.
        batch : dict
            With :data:`hamnet.graph_keys.TARGET_DIAG` and :data:`hamnet.graph_keys.TARGET_OFFDIAG`.

        Returns
        -------
        dict
            :data:`hamnet.graph_keys.LOSS` (differentiable), :data:`hamnet.graph_keys.LOSS_H`,
            :data:`hamnet.graph_keys.LOSS_T` (0 without TraceGrad); all scalar tensors.
        """
        for k in GK.TARGET_KEYS:
            if k not in batch:
                raise LossError(f"batch has no {k!r}: build graphs with molecule_graph(..., basis=, fock=)")
        pred_d, pred_o = out[GK.DIAG], out[GK.OFFDIAG]
        tgt_d = batch[GK.TARGET_DIAG].to(device=pred_d.device, dtype=pred_d.dtype)
        tgt_o = batch[GK.TARGET_OFFDIAG].to(device=pred_o.device, dtype=pred_o.dtype)
        if tgt_d.shape != pred_d.shape or tgt_o.shape != pred_o.shape:
            raise LossError(
                f"target blocks {tuple(tgt_d.shape)}/{tuple(tgt_o.shape)} do not match predictions "
                f"{tuple(pred_d.shape)}/{tuple(pred_o.shape)}: were targets built with the model's basis?"
            )
        err_h = torch.cat([(pred_d - tgt_d)[out[GK.DIAG_MASK]], (pred_o - tgt_o)[out[GK.OFFDIAG_MASK]]])
        loss_h = _reduce(err_h, self.kind)
        if GK.DIAG_TRACE in out:
            with torch.no_grad():
                lab_d, lab_o = self.traces(tgt_d), self.traces(tgt_o)  # [n, n_sp] Hartree
            mask_d = out[GK.DIAG_TRACE_MASK]
            errs = [(out[GK.DIAG_TRACE] - lab_d)[mask_d], (out[GK.OFFDIAG_TRACE] - lab_o)[out[GK.OFFDIAG_TRACE_MASK]]]
            if GK.DIAG_TRACE_HIDDEN in out:  # (K-1, n_atoms, n_sp): every layer's code is supervised
                errs.append((out[GK.DIAG_TRACE_HIDDEN] - lab_d)[:, mask_d].reshape(-1))
            loss_t = _reduce(torch.cat(errs), self.kind)
            if self.mode == "fixed":
                loss = loss_h + self.trace_weight * loss_t
            else:
                lam = self.trace_lambda
                ratio = (loss_h / loss_t.clamp_min(torch.finfo(loss_t.dtype).tiny)).detach()
                loss = (1 - lam) * loss_h + lam * ratio * loss_t
        else:
            loss_t = loss_h.new_zeros(())
            loss = loss_h
        return {
            GK.LOSS: loss,
            GK.LOSS_H: loss_h.detach(),
            GK.LOSS_T: loss_t.detach(),
        }
