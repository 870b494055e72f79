"""Graphs: geometry input, validation, pair bookkeeping, batching, cutoff edges."""

import numpy as np
import pytest
import torch
from pyscf import gto
from pyscf.data import nist

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import (
    GraphError,
    collate,
    cutoff_edges,
    geometry_of,
    molecule_graph,
    pair_reverse,
    validate_geometry,
)

from hamnet.testing import WATER_POS, WATER_Z  # noqa: E402


@pytest.fixture(scope="module")
def basis():
    return OrbitalBasis("def2-svp", ["H", "C", "O"])


def test_geometry_of_accepts_ase_mole_and_tuple():
    from ase import Atoms

    Z, pos = geometry_of(Atoms("OH2", positions=WATER_POS))
    assert Z.tolist() == WATER_Z.tolist() and np.allclose(pos, WATER_POS)
    # A Mole given in Bohr comes back in Angstrom (nist.BOHR = Angstrom per Bohr).
    mol = gto.M(atom=[(z, p / nist.BOHR) for z, p in zip("OHH", WATER_POS)], unit="Bohr", basis="sto-3g")
    Z, pos = geometry_of(mol)
    assert Z.tolist() == WATER_Z.tolist() and np.allclose(pos, WATER_POS, atol=1e-12)
    Z, pos = geometry_of((["O", "H", 1], WATER_POS.tolist()))
    assert Z.tolist() == WATER_Z.tolist() and pos.dtype == np.float64
    with pytest.raises(GraphError, match="ase.Atoms"):
        geometry_of("H2O")
    with pytest.raises(GraphError, match="unknown element"):
        geometry_of((["Xx"], [[0, 0, 0]]))


@pytest.mark.parametrize(
    "Z, pos, match",
    [
        ([], np.zeros((0, 3)), "at least one atom"),
        ([8, 1], WATER_POS, r"shape \(2, 3\)"),
        (WATER_Z, np.where(np.eye(3, dtype=bool), np.nan, WATER_POS), r"non-finite .* atom\(s\) \[0, 1, 2\]"),
        (WATER_Z, np.array([[0, 0, 0], [0, 0, 0.05], [1, 0, 0]]), "atoms 0 and 1 are 0.05 Angstrom apart"),
        ([8, 1, 17], WATER_POS, "Cl not supported: this model was built for H, C, O"),
        ([8.0, 1.0, 1.0], WATER_POS, "integers"),
    ],
)
def test_bad_geometry_raises_clear_error(Z, pos, match):
    with pytest.raises(GraphError, match=match):
        validate_geometry(np.asarray(Z), pos, elements=[1, 6, 8])


def test_pairs_follow_basis_split_order_and_targets_round_trip(basis):
    rng = np.random.default_rng(0)
    Z = [6, 8, 1, 1]
    pos = np.array([[0, 0, 0], [1.2, 0, 0], [-0.6, 0.9, 0], [-0.6, -0.9, 0.1]])
    nao = basis.layout(Z).nao
    F = rng.normal(size=(nao, nao))
    F = F + F.T
    g = molecule_graph(Z, pos, basis=basis, fock=F)
    ii, jj = g[GK.PAIR_INDEX].numpy()
    assert len(ii) == 4 * 3 and np.all(ii != jj)
    # Target blocks are exactly the AO sub-blocks of F for atoms (i, i) and (i, j).
    off = basis.layout(Z).atom_offsets
    for k, (i, j) in enumerate(zip(ii, jj)):
        sub = F[off[i] : off[i + 1], off[j] : off[j + 1]]
        pi, pj = basis.pad_index[Z[i]], basis.pad_index[Z[j]]
        assert np.array_equal(g[GK.TARGET_OFFDIAG][k].numpy()[np.ix_(pi, pj)], sub)
    back = basis.assemble(g[GK.TARGET_DIAG].numpy(), g[GK.TARGET_OFFDIAG].numpy(), Z)
    assert np.array_equal(back, F)
    with pytest.raises(GraphError, match="not symmetric"):
        molecule_graph(Z, pos, basis=basis, fock=F + np.triu(np.ones_like(F), 1))
    with pytest.raises(GraphError, match="does not fit"):
        molecule_graph(Z, pos, basis=basis, fock=F[:-1, :-1])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_pair_reverse_is_the_transposed_pair(n):
    ii, jj = OrbitalBasis.pair_index(n)
    rev = pair_reverse(n)
    assert np.array_equal(ii[rev], jj) and np.array_equal(jj[rev], ii)
    assert np.array_equal(rev[rev], np.arange(len(ii)))


def test_collate_offsets_indices_and_keeps_targets(basis):
    rng = np.random.default_rng(1)
    mols = [([8, 1, 1], WATER_POS), ([1], np.zeros((1, 3))), ([6, 1, 1, 1, 1], rng.normal(size=(5, 3)) * 1.5)]
    graphs = []
    for Z, pos in mols:
        nao = basis.layout(Z).nao
        F = rng.normal(size=(nao, nao))
        graphs.append(molecule_graph(Z, pos, basis=basis, fock=F + F.T))
    b = collate(graphs)
    assert b[GK.PTR].tolist() == [0, 3, 4, 9]
    assert b[GK.PAIR_PTR].tolist() == [0, 6, 6, 26]
    assert b[GK.BATCH].tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2]
    i, j = b[GK.PAIR_INDEX]
    assert torch.equal(b[GK.BATCH][i], b[GK.BATCH][j]) and bool((i != j).all())
    rev = b[GK.PAIR_REVERSE]
    assert torch.equal(i[rev], j) and torch.equal(j[rev], i)
    assert torch.equal(b[GK.TARGET_OFFDIAG][6:], graphs[2][GK.TARGET_OFFDIAG])
    assert torch.equal(b[GK.POS][4:], graphs[2][GK.POS])
    with pytest.raises(GraphError, match="some graphs"):
        collate([graphs[0], molecule_graph([1], [[0, 0, 0]])])
    with pytest.raises(GraphError, match="unknown keys"):
        collate([{**graphs[0], "energy": torch.zeros(())}])
    with pytest.raises(GraphError, match="empty"):
        collate([])


def test_cutoff_edges_match_brute_force():
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 6, size=(12, 3))
    g = molecule_graph([1] * 12, pos, min_distance=0.0)
    edge_index, vec, length = cutoff_edges(g[GK.POS], g[GK.PAIR_INDEX], 3.0)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    expected = {(a, b) for a in range(12) for b in range(12) if a != b and d[a, b] < 3.0}
    got = set(map(tuple, edge_index.T.tolist()))
    assert got == expected
    s, r = edge_index
    assert torch.allclose(vec, g[GK.POS][s] - g[GK.POS][r])
    assert torch.allclose(length, vec.norm(dim=-1))
