"""hamnet.basis against PySCF itself: AO rotations, change of basis, block maps, layouts."""

import numpy as np
import pytest
import torch
from e3nn import o3
from pyscf import gto, scf
from scipy.spatial.transform import Rotation

from hamnet import basis as hb
from hamnet.basis import BasisError, OrbitalBasis

# Carbamoyl fluoride, H2N-C(=O)F: H, C, N, O and F in six atoms (Angstrom).
SYMBOLS = ["C", "O", "F", "N", "H", "H"]
XYZ = np.array(
    [
        [0.000, 0.000, 0.000],
        [0.000, 1.190, 0.050],
        [1.150, -0.650, -0.030],
        [-1.130, -0.720, 0.020],
        [-1.160, -1.720, -0.080],
        [-2.000, -0.210, 0.100],
    ]
)


def make_mol(xyz, basis, **kw):
    return gto.M(atom=list(zip(SYMBOLS, xyz)), basis=basis, unit="Angstrom", verbose=0, **kw)


def random_rotation(seed, improper=False):
    R = Rotation.random(random_state=seed).as_matrix()
    return -R if improper else R


def rhf_fock(mol):
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-12
    mf.conv_tol_grad = 1e-8
    mf.kernel()
    assert mf.converged
    return mf.get_fock()


@pytest.mark.slow
@pytest.mark.parametrize("basis_name", ["def2-svp", "def2-tzvp"])
def test_fock_rotation_matches_pyscf(basis_name):
    R = random_rotation(7)
    mol = make_mol(XYZ, basis_name)
    mol_rot = make_mol(XYZ @ R.T, basis_name)
    if basis_name == "def2-tzvp":
        assert 3 in {mol.bas_angular(i) for i in range(mol.nbas)}, "test needs f functions"
    D = hb.ao_rotation(mol, R)
    F, F_rot = rhf_fock(mol), rhf_fock(mol_rot)
    assert np.abs(F_rot - D @ F @ D.T).max() < 1e-8


@pytest.mark.parametrize("basis_name", ["def2-svp", "def2-tzvp", "cc-pvqz"])
@pytest.mark.parametrize("improper", [False, True])
def test_overlap_rotation_matches_pyscf(basis_name, improper):
    R = random_rotation(11, improper)
    mol = make_mol(XYZ, basis_name)
    mol_rot = make_mol(XYZ @ R.T + np.array([0.3, -1.0, 2.0]), basis_name)
    D = hb.ao_rotation(mol, R)
    assert np.abs(D @ D.T - np.eye(mol.nao)).max() < 1e-12
    for integral in ("int1e_ovlp", "int1e_kin"):
        M, M_rot = mol.intor(integral), mol_rot.intor(integral)
        assert np.abs(M_rot - D @ M @ D.T).max() < 1e-10, integral


def test_change_of_basis_is_orthogonal_and_not_a_permutation_for_d():
    for l in range(7):
        q = hb.change_of_basis(l)
        assert np.abs(q @ q.T - np.eye(2 * l + 1)).max() < 1e-12
    # p: PySCF's (x, y, z) equals e3nn 0.6's (x, y, z).
    assert np.allclose(hb.change_of_basis(1), np.eye(3))
    q2 = hb.change_of_basis(2)
    assert np.sum(np.abs(q2) > 1e-8) > 5, "l=2 should mix functions in this e3nn version"


def test_change_of_basis_maps_pyscf_aos_to_e3nn_harmonics():
    """A PySCF AO value vector on the unit sphere is proportional to Q^T Y_e3nn."""
    pts = Rotation.random(5, random_state=3).as_matrix()[:, :, 0]  # 5 unit vectors
    for l in range(5):
        mol = gto.M(atom="H 0 0 0", basis={"H": [[l, [0.7, 1.0]]]}, spin=None, unit="Bohr")
        ao = mol.eval_gto("GTOval_sph", pts)  # [5, 2l+1]
        y = o3.spherical_harmonics(l, torch.from_numpy(pts), normalize=True).numpy()
        pred = y @ hb.change_of_basis(l)
        ratio = ao / pred
        assert np.allclose(ratio, ratio.flat[np.argmax(np.abs(pred))], rtol=1e-10, atol=0)


@pytest.mark.parametrize("improper", [False, True])
def test_wigner_D_e3nn_agrees_with_e3nn_and_is_a_representation(improper):
    R1, R2 = random_rotation(1, improper), random_rotation(2)
    for l in range(6):
        D1 = hb.wigner_D_e3nn(l, R1)
        ref = o3.Irrep(l, (-1) ** l).D_from_matrix(torch.from_numpy(R1)).numpy()
        assert np.abs(D1 - ref).max() < 1e-5  # e3nn's own route is float32-accurate
        D12 = hb.wigner_D_e3nn(l, R1 @ R2)
        assert np.abs(D12 - D1 @ hb.wigner_D_e3nn(l, R2)).max() < 1e-12


def test_rotation_input_is_validated():
    mol = make_mol(XYZ, "sto-3g")
    with pytest.raises(ValueError, match="3x3"):
        hb.ao_rotation(mol, np.eye(2))
    with pytest.raises(ValueError, match="orthogonal"):
        hb.ao_rotation(mol, 2 * np.eye(3))


# ---- block decomposition -------------------------------------------------------------


def irreps_D(irreps, R):
    """Float64 block-diagonal D of an e3nn Irreps (parity from each irrep)."""
    mats = []
    for mul, ir in irreps:
        d = hb.wigner_D_e3nn(ir.l, R) * (ir.p * (-1) ** ir.l if np.linalg.det(R) < 0 else 1)
        mats += [d] * mul
    from scipy.linalg import block_diag

    return block_diag(*mats)


@pytest.mark.parametrize("l1,l2", [(0, 0), (0, 2), (1, 1), (2, 1), (2, 2), (3, 2), (4, 3)])
def test_block_roundtrip_norm_and_equivariance(l1, l2):
    g = torch.Generator().manual_seed(l1 * 10 + l2)
    B = torch.randn(4, 2 * l1 + 1, 2 * l2 + 1, generator=g, dtype=torch.float64)
    x = hb.block_to_irreps(B, l1, l2)
    irreps = hb.block_irreps(l1, l2)
    assert x.shape == (4, irreps.dim)
    assert all(ir.p == (-1) ** (l1 + l2) for _, ir in irreps)
    assert [ir.l for _, ir in irreps] == list(range(abs(l1 - l2), l1 + l2 + 1))
    assert torch.allclose(hb.irreps_to_block(x, l1, l2), B, atol=1e-13, rtol=0)
    assert torch.allclose(x.norm(dim=-1), B.flatten(1).norm(dim=-1), atol=1e-12, rtol=0)
    for improper in (False, True):
        R = random_rotation(5, improper)
        B_rot = hb.wigner_D_pyscf(l1, R) @ B.numpy() @ hb.wigner_D_pyscf(l2, R).T
        x_rot = hb.block_to_irreps(torch.from_numpy(B_rot), l1, l2).numpy()
        assert np.abs(x_rot - x.numpy() @ irreps_D(irreps, R).T).max() < 1e-12
        # ... and with e3nn's own (float32-accurate) D_from_matrix
        D_e3nn = irreps.D_from_matrix(torch.from_numpy(R)).numpy()
        assert np.abs(x_rot - x.numpy() @ D_e3nn.T).max() < 1e-5


def test_block_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        hb.block_to_irreps(torch.zeros(3, 3), 1, 2)
    with pytest.raises(ValueError, match="dim"):
        hb.irreps_to_block(torch.zeros(4), 1, 1)


# ---- layouts, split and assemble ---------------------------------------------------------


def test_layout_matches_pyscf_ao_labels():
    mol = make_mol(XYZ, "def2-tzvp")
    ob = OrbitalBasis("def2-tzvp", SYMBOLS)
    lay = ob.layout(mol.atom_charges())
    assert lay.nao == mol.nao
    assert np.array_equal(lay.atom_offsets[:-1], mol.aoslice_by_atom()[:, 2])
    labels = mol.ao_labels(fmt=False)  # (atom, symbol, "2p", "x" | "-1" ...)
    assert np.array_equal(lay.ao_atom, [lab[0] for lab in labels])
    letters = "spdfghi"
    assert np.array_equal(lay.ao_l, [letters.index(lab[2][-1]) for lab in labels])
    named_m = {"x": 1, "y": -1, "z": 0, "xy": -2, "yz": -1, "z^2": 0, "xz": 1, "x2-y2": 2}
    for lab, l, m in zip(labels, lay.ao_l, lay.ao_m):
        if l >= 1:
            assert (named_m[lab[3]] if l <= 2 else int(lab[3])) == m, lab


def test_from_mole_equals_named_basis():
    mol = make_mol(XYZ, "def2-svp")
    a, b = OrbitalBasis.from_mole(mol), OrbitalBasis("def2-SVP", "HCNOF")
    assert a.radial_ls == b.radial_ls
    assert a.block_irreps == b.block_irreps
    assert b.nao("C") == 14 and b.nao(1) == 5
    assert b.block_irreps.lmax == 4  # d x d blocks in def2-SVP


def test_padded_blocks_transform_as_block_irreps():
    ob = OrbitalBasis("def2-tzvp", SYMBOLS)
    g = torch.Generator().manual_seed(0)
    B = torch.randn(3, ob.n_pad, ob.n_pad, generator=g, dtype=torch.float64)
    x = ob.padded_to_irreps(B)
    assert torch.allclose(ob.irreps_to_padded(x), B, atol=1e-13, rtol=0)
    R = random_rotation(9, improper=True)
    D_pad = np.zeros((ob.n_pad, ob.n_pad))
    start = 0
    for l in ob.pad_ls:
        D_pad[start : start + 2 * l + 1, start : start + 2 * l + 1] = hb.wigner_D_pyscf(l, R)
        start += 2 * l + 1
    x_rot = ob.padded_to_irreps(torch.from_numpy(D_pad @ B.numpy() @ D_pad.T)).numpy()
    assert np.abs(x_rot - x.numpy() @ irreps_D(ob.block_irreps, R).T).max() < 1e-12
    # Shell-pair bookkeeping agrees between the two representations.
    sq = (B**2).numpy()
    for sp in range(ob.n_slot_pairs):
        t_block = sq[:, ob.slot_pair_id == sp].sum(-1)
        t_irreps = (x.numpy() ** 2)[:, ob.irreps_slot_pair == sp].sum(-1)
        assert np.allclose(t_block, t_irreps, atol=1e-12)


def test_split_assemble_roundtrip_real_fock():
    mol = make_mol(XYZ, "def2-svp")
    mf = scf.RHF(mol).run(conv_tol=1e-8)
    F = mf.get_fock()
    ob = OrbitalBasis.from_mole(mol)
    Z = mol.atom_charges()
    diag, off = ob.split(F, Z)
    n = mol.natm
    assert diag.shape == (n, ob.n_pad, ob.n_pad) and off.shape == (n * (n - 1), ob.n_pad, ob.n_pad)
    assert np.array_equal(ob.assemble(diag, off, Z), F)
    # Block (i, j) holds exactly F[atom i AOs, atom j AOs] at the element's padded positions.
    lay = ob.layout(Z)
    ii, jj = ob.pair_index(n)
    k = 7
    i, j = ii[k], jj[k]
    si = slice(lay.atom_offsets[i], lay.atom_offsets[i + 1])
    sj = slice(lay.atom_offsets[j], lay.atom_offsets[j + 1])
    assert np.array_equal(off[k][np.ix_(ob.pad_index[Z[i]], ob.pad_index[Z[j]])], F[si, sj])
    assert not off[k][~ob.block_mask(Z[i], Z[j])].any()
    # torch, differentiable
    Ft = torch.tensor(F, requires_grad=True)
    d_t, o_t = ob.split(Ft, Z)
    back = ob.assemble(d_t, o_t, Z)
    assert torch.equal(back.detach(), Ft.detach())
    back.sum().backward()
    assert torch.equal(Ft.grad, torch.ones_like(Ft))


def test_clear_errors():
    with pytest.raises(BasisError, match="no functions for element U"):
        OrbitalBasis("def2-svp", ["H", "U"])
    with pytest.raises(BasisError, match="unknown basis"):
        OrbitalBasis("no-such-basis-xyz", ["H"])
    with pytest.raises(BasisError, match="unknown element"):
        OrbitalBasis("def2-svp", ["Qq"])
    with pytest.raises(BasisError, match="unknown element"):
        OrbitalBasis("def2-svp", ["Xx"])
    mol_cart = make_mol(XYZ, "def2-svp", cart=True)
    with pytest.raises(BasisError, match="Cartesian"):
        hb.ao_rotation(mol_cart, np.eye(3))
    with pytest.raises(BasisError, match="Cartesian"):
        OrbitalBasis.from_mole(mol_cart)
    ob = OrbitalBasis("def2-svp", ["H", "O"])
    with pytest.raises(BasisError, match="element C is not in this basis layout"):
        ob.layout([6, 1])
    with pytest.raises(BasisError, match="differs"):
        ob.check_mole(gto.M(atom="O 0 0 0; H 0 0 0.96", basis="sto-3g", spin=1))
    with pytest.raises(ValueError, match="does not match"):
        ob.split(np.zeros((3, 3)), [8, 1])
