"""The TraceGrad loss (block and trace terms, fixed and balanced) against full-matrix and hand-computed references."""

import numpy as np
import pytest
import torch
from pyscf import gto

from hamnet import graph_keys as GK
from hamnet.graph import collate, molecule_graph
from hamnet.loss import HamiltonianLoss, LossError
from hamnet.model import build_model

TINY = dict(tracegrad=True, tracegrad_layers="all", tracegrad_decode="own", num_channels=2, radial_hidden=8, tracegrad_channels=2, tracegrad_hidden=8, tracegrad_dim=4)
MOLS = [
    ("O 0 0 0.117; H 0 0.757 -0.469; H 0 -0.757 -0.469", [8, 1, 1]),
    ("C 0 0 0; O 1.21 0.02 0; H -0.58 0.94 0.03; H -0.55 -0.93 -0.02", [6, 8, 1, 1]),
]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(1)
    model = build_model("sto-3g", ["H", "C", "O"], dtype=torch.float64, **TINY)
    graphs, targets, preds = [], [], []
    for atom, Z in MOLS:
        mol = gto.M(atom=atom, basis="sto-3g", unit="Angstrom")
        F = mol.intor("int1e_kin") + mol.intor("int1e_nuc")  # a PySCF matrix as the target
        graphs.append(molecule_graph(Z, mol.atom_coords(unit="Angstrom"), basis=model.basis, fock=F))
        targets.append(F)
    batch = collate(graphs)
    with torch.no_grad():
        out = model(batch)
    preds = [F.numpy() for F in model.assemble(out, batch)]
    return model, batch, out, targets, preds


def _hand_traces(F, Z, basis):
    """Per atom pair block and shell pair: sqrt(tr(H_s H_s^T) / size), from the full matrix."""
    lay = basis.layout(Z)
    labels = {}
    starts = {}
    for a in range(len(Z)):
        ao = np.arange(lay.atom_offsets[a], lay.atom_offsets[a + 1])
        radial = lay.ao_radial[ao]
        starts[a] = [ao[radial == r] for r in range(radial.max() + 1)]
    for a in range(len(Z)):
        for b in range(len(Z)):
            for ra, ia in enumerate(starts[a]):
                for rb, ib in enumerate(starts[b]):
                    sub = F[np.ix_(ia, ib)]
                    labels[(a, b, ra, rb)] = np.sqrt((sub**2).sum() / sub.size)
    return labels


@pytest.mark.parametrize("kind", ["mse", "mae"])
def test_block_loss_is_the_full_matrix_error(setup, kind):
    model, batch, out, targets, preds = setup
    parts = HamiltonianLoss(model.basis, trace_weight=0.0, kind=kind)(out, batch)
    err = np.concatenate([(P - T).ravel() for P, T in zip(preds, targets)])
    expected = np.mean(err**2) if kind == "mse" else np.mean(np.abs(err))
    assert abs(parts[GK.LOSS_H].item() - expected) < 1e-12 * max(1.0, expected)
    assert parts[GK.LOSS].item() == pytest.approx(parts[GK.LOSS_H].item(), abs=0)


def test_trace_loss_matches_hand_computed_labels(setup):
    model, batch, out, targets, _ = setup
    lam = 0.7
    parts = HamiltonianLoss(model.basis, trace_weight=lam, mode="fixed")(out, batch)
    # Hand computation: predicted trace of (pair, shell pair) vs label from the full matrix.
    basis = model.basis
    ns = len(basis.pad_ls)
    errs = []
    ptr, pptr = batch[GK.PTR].tolist(), batch[GK.PAIR_PTR].tolist()
    for m, (F, (_, Z)) in enumerate(zip(targets, MOLS)):
        labels = _hand_traces(F, Z, basis)
        ii, jj = np.nonzero(~np.eye(len(Z), dtype=bool))
        slot = {z: [] for z in set(Z)}  # padded slot of each radial function of each element
        for z in set(Z):
            used = []
            for k, l in enumerate(basis.radial_ls[z]):
                s = [q for q, lq in enumerate(basis.pad_ls) if lq == l and q not in used][0]
                used.append(s)
                slot[z].append(s)
        for (a, b, ra, rb), label in labels.items():
            sp = slot[Z[a]][ra] * ns + slot[Z[b]][rb]
            if a == b:
                pred = out[GK.DIAG_TRACE][ptr[m] + a, sp].item()
                for t_hidden in out[GK.DIAG_TRACE_HIDDEN]:  # every layer's traces are supervised
                    errs.append(t_hidden[ptr[m] + a, sp].item() - label)
            else:
                row = pptr[m] + int(np.flatnonzero((ii == a) & (jj == b))[0])
                pred = out[GK.OFFDIAG_TRACE][row, sp].item()
            errs.append(pred - label)
    loss_t = np.mean(np.square(errs))
    n_layers = 1 + len(out[GK.DIAG_TRACE_HIDDEN])
    assert n_layers == model.config["num_layers"] == 2
    n_masked = int(n_layers * out[GK.DIAG_TRACE_MASK].sum() + out[GK.OFFDIAG_TRACE_MASK].sum())
    assert n_masked == len(errs)
    assert abs(parts[GK.LOSS_T].item() - loss_t) < 1e-12 * max(1.0, loss_t)
    assert abs(parts[GK.LOSS].item() - (parts[GK.LOSS_H].item() + lam * loss_t)) < 1e-12 * max(1.0, loss_t)


def test_balanced_loss_value_and_gradient(setup):
    """(1-lam) L_H + lam sg(L_H/L_T) L_T: value L_H, gradient (1-lam) dL_H + lam (L_H/L_T) dL_T."""
    model, batch, out, _, _ = setup
    lam = 0.3
    leaves = {k: out[k].detach().clone().requires_grad_(True)
              for k in (GK.DIAG, GK.OFFDIAG, GK.DIAG_TRACE, GK.OFFDIAG_TRACE, GK.DIAG_TRACE_HIDDEN)}
    parts = HamiltonianLoss(model.basis, mode="balanced", trace_lambda=lam)(dict(out, **leaves), batch)
    L_H, L_T = parts[GK.LOSS_H].item(), parts[GK.LOSS_T].item()
    assert L_T > 0
    assert parts[GK.LOSS].item() == pytest.approx(L_H, rel=1e-12)
    grads = torch.autograd.grad(parts[GK.LOSS], list(leaves.values()))
    gh = torch.autograd.grad(HamiltonianLoss(model.basis, trace_weight=0.0, mode="fixed")(
        dict(out, **leaves), batch)[GK.LOSS], list(leaves.values()), allow_unused=True)
    fixed1 = HamiltonianLoss(model.basis, trace_weight=1.0, mode="fixed")(dict(out, **leaves), batch)[GK.LOSS]
    gboth = torch.autograd.grad(fixed1, list(leaves.values()))
    for g, h, b in zip(grads, gh, gboth):
        h = torch.zeros_like(b) if h is None else h
        expected = (1 - lam) * h + lam * (L_H / L_T) * (b - h)  # b - h: the gradient of L_T
        assert torch.allclose(g, expected, rtol=1e-10, atol=1e-14)


def test_perfect_prediction_has_zero_block_loss(setup):
    model, batch, out, _, _ = setup
    perfect = dict(out, **{GK.DIAG: batch[GK.TARGET_DIAG], GK.OFFDIAG: batch[GK.TARGET_OFFDIAG]})
    perfect[GK.DIAG_TRACE] = HamiltonianLoss(model.basis).target_traces(batch[GK.TARGET_DIAG])
    perfect[GK.OFFDIAG_TRACE] = HamiltonianLoss(model.basis).target_traces(batch[GK.TARGET_OFFDIAG])
    perfect[GK.DIAG_TRACE_HIDDEN] = perfect[GK.DIAG_TRACE][None]
    for mode in ("balanced", "fixed"):
        parts = HamiltonianLoss(model.basis, mode=mode)(perfect, batch)
        assert parts[GK.LOSS].item() == 0.0 and parts[GK.LOSS_T].item() == 0.0


def test_loss_errors_are_clear(setup):
    model, batch, out, _, _ = setup
    with pytest.raises(LossError, match="kind must be one of"):
        HamiltonianLoss(model.basis, kind="huber")
    with pytest.raises(LossError, match="trace_weight"):
        HamiltonianLoss(model.basis, trace_weight=-1)
    with pytest.raises(LossError, match="trace loss mode"):
        HamiltonianLoss(model.basis, mode="adaptive")
    with pytest.raises(LossError, match="trace_lambda"):
        HamiltonianLoss(model.basis, trace_lambda=1.0)
    no_target = {k: v for k, v in batch.items() if k != GK.TARGET_OFFDIAG}
    with pytest.raises(LossError, match="no 'target_offdiag'"):
        HamiltonianLoss(model.basis)(out, no_target)
