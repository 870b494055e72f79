"""Per-layer TraceGrad and its options: exact symmetry of every variant, and each part does something.

Every variant gets the shared backbone tests (float64 rotation, inversion, translation and
permutation to 1e-9 through :func:`hamnet.testing.assert_equivariant`, batch = single,
save/load). The tests below check that the options change the network: a random-weight
model predicts differently when a TraceGrad update is switched off, the hidden layers'
update feeds the next layer, and each option builds the modules it names.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hamnet import graph_keys as GK
from hamnet.graph import molecule_graph
from hamnet.model import build_model
from hamnet.nn.tracegrad import InvariantEncoder, TraceGrad
from hamnet.testing import TEST_POS, TEST_Z, BackboneTests, assert_equivariant

SMALL = dict(tracegrad=True, tracegrad_layers="all", tracegrad_decode="own", num_channels=3, radial_hidden=16, tracegrad_channels=3, tracegrad_hidden=16, tracegrad_dim=8,
             tracegrad_alpha=1.0)


class TestAllLayersConcatNormtiedCG(BackboneTests):
    config = dict(SMALL, backbone="equivariant", tracegrad_decode="concat", tracegrad_combine="normtied",
                  tracegrad_encoder="cg")


class TestLastLayerPlain(BackboneTests):
    config = dict(SMALL, backbone="equivariant", tracegrad_layers="last", tracegrad_combine="plain")


class TestSO2AllLayersCG(BackboneTests):
    config = dict(SMALL, backbone="so2", tracegrad_encoder="cg", tracegrad_combine="normtied", pair_cutoff=2.0)


def _model(**kw):
    torch.manual_seed(0)
    return build_model("def2-svp", ["H", "C", "N", "O", "F"], dtype=torch.float64, **{**SMALL, **kw}).eval()


def _without_update(module):
    """Make ``module`` (a TraceGrad) leave its features unchanged: f' = f."""
    module.update = lambda f, v: torch.zeros_like(f)


VARIANTS = [
    dict(backbone="equivariant"),
    dict(backbone="equivariant", tracegrad_decode="concat", tracegrad_combine="plain"),
    dict(backbone="equivariant", tracegrad_combine="normtied", tracegrad_encoder="cg"),
    dict(backbone="so2", pair_cutoff=2.0),
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_every_tracegrad_update_changes_the_prediction(kw):
    """Switching off the update of any one TraceGrad (hidden layer, last layer, pair) changes F."""
    model = _model(**kw)
    F = model.predict((TEST_Z, TEST_POS))
    mods = model._tracegrad_modules()
    assert set(mods) == {"layer0", "layer1", "pair"}  # 2 layers, TraceGrad after both, and on pairs
    for name in mods:
        other = _model(**kw)
        _without_update(other._tracegrad_modules()[name])
        diff = np.abs(other.predict((TEST_Z, TEST_POS)) - F).max()
        assert diff > 1e-4, f"TraceGrad {name} does not change the prediction ({diff:.2e})"


def test_last_only_has_one_node_tracegrad_and_no_hidden_traces():
    model = _model(tracegrad_layers="last")
    assert len(model.tracegrad_hidden) == 0 and set(model._tracegrad_modules()) == {"layer1", "pair"}
    out = model(molecule_graph(TEST_Z, TEST_POS))
    assert GK.DIAG_TRACE_HIDDEN not in out and out[GK.DIAG_TRACE].shape[0] == len(TEST_Z)


def test_hidden_traces_are_output_for_own_decoders_only():
    own = _model()(molecule_graph(TEST_Z, TEST_POS))
    assert own[GK.DIAG_TRACE_HIDDEN].shape == (1,) + tuple(own[GK.DIAG_TRACE].shape)
    concat = _model(tracegrad_decode="concat")
    assert concat.tracegrad_node.decoder is None and concat.tracegrad_node_decoder[0].in_features == 2 * 8
    assert GK.DIAG_TRACE_HIDDEN not in concat(molecule_graph(TEST_Z, TEST_POS))


def test_stats_are_reported_per_layer():
    model = _model()
    model.predict((TEST_Z, TEST_POS))
    stats = model.tracegrad_stats()
    assert set(stats) == {f"{k}_{n}" for k in ("v_over_f", "update_over_f") for n in ("layer0", "layer1", "pair")}
    assert all(np.isfinite(v) and v > 0 for v in stats.values())
    # rms with alpha = 1: |g(v)| = |f|-independent unit RMS per irrep type, so update/f = 1/|f| up to the mix
    plain = _model(tracegrad_combine="plain")
    plain.predict((TEST_Z, TEST_POS))
    s = plain.tracegrad_stats()
    assert s["v_over_f_layer0"] == pytest.approx(s["update_over_f_layer0"], rel=1e-12)  # plain: g(v) = v


def test_normtied_update_is_alpha_times_the_feature_norm():
    """normtied: |g(v_k)| = alpha |f_k| per sample and irrep type (up to eps), whatever |v|."""
    torch.manual_seed(3)
    irreps = "4x0e+4x1o+4x2e"
    tg = TraceGrad(irreps, n_traces=3, channels=2, hidden=8, depth=1, dim_z=4, alpha=0.2, eps=1e-12,
                   combine="normtied").double()
    f = torch.randn(5, tg.irreps.dim, dtype=torch.float64)
    out, t, z = tg(f)
    g = out - f
    for (mul, ir), sl in zip(tg.irreps, tg.irreps.slices()):
        ratio = g[:, sl].norm(dim=1) / f[:, sl].norm(dim=1)
        assert torch.allclose(ratio, torch.full_like(ratio, 0.2), rtol=1e-9)
    assert t.shape == (5, 3) and z.shape == (5, 4)


def test_rms_update_has_a_bounded_gradient_at_zero_v():
    """rms with eps: near v = 0 the update is linear with slope alpha / sqrt(eps), not 1/sqrt(1e-300)."""
    tg = TraceGrad("2x0e+2x1o", n_traces=1, channels=2, hidden=4, depth=1, dim_z=2, alpha=0.1, eps=1e-4).double()
    f = torch.zeros(1, tg.irreps.dim, dtype=torch.float64)
    v = torch.zeros(1, tg.irreps.dim, dtype=torch.float64, requires_grad=True)
    (J,) = torch.autograd.grad(tg.update(f, v).sum(), v)
    assert torch.allclose(J, torch.full_like(J, 0.1 / 1e-2))


@pytest.mark.parametrize("kind", ["gram", "cg"])
def test_invariant_encoders_are_invariant(kind):
    """The encoder alone: z(D f) = z(f) for a random rotation and for inversion, float64."""
    from e3nn import o3

    torch.manual_seed(0)
    irreps = o3.Irreps("3x0e+3x1o+3x2e+2x1e+2x3o")
    enc = InvariantEncoder(irreps, channels=3, hidden=8, depth=2, dim_z=5, kind=kind).double()
    f = torch.randn(7, irreps.dim, dtype=torch.float64)
    R = o3.rand_matrix(dtype=torch.float64)
    for Q in (R, -R):  # a rotation, and a rotation times the inversion
        D = irreps.D_from_matrix(Q)
        assert torch.allclose(enc(f @ D.T), enc(f), atol=1e-12)
    assert enc(f).std() > 1e-3


def test_cg_encoder_has_learnable_contractions():
    from e3nn import o3

    enc = InvariantEncoder(o3.Irreps("2x0e+2x1o"), channels=2, hidden=4, depth=1, dim_z=2, kind="cg")
    assert enc.contract.weight.requires_grad and enc.contract.weight.numel() > 0
    with pytest.raises(ValueError, match="invariant encoder"):
        InvariantEncoder(o3.Irreps("2x0e"), channels=2, hidden=4, depth=1, dim_z=2, kind="svd")


def test_bad_option_is_a_config_error_naming_the_key():
    from hamnet.errors import ConfigError

    with pytest.raises(ConfigError, match="tracegrad_combine"):
        build_model("sto-3g", ["H", "O"], tracegrad_combine="sum")


def test_default_model_is_equivariant_in_float64():
    model = _model()
    assert_equivariant(lambda Z, pos: model.predict((Z, pos)), model.basis, TEST_Z, TEST_POS, atol=1e-9)
