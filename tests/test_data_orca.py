"""ORCA <-> PySCF AO conventions (data_tools.orca)."""

import numpy as np
import pytest
from pyscf import gto

from data_tools.orca import (
    OrcaConventionError,
    orca_m_order,
    orca_to_pyscf,
    orca_to_pyscf_index,
    pyscf_to_orca,
)
from hamnet.basis import OrbitalBasis


def _layout(basis, Z):
    return OrbitalBasis(basis, set(Z)).layout(Z)


def test_def2svp_oxygen_matches_published_index_maps():
    # O in def2-SVP: 3s 2p 1d. QHNet's ORCA->PySCF d map is [4, 2, 0, 1, 3]; for p,
    # PySCF's (px, py, pz) sit at ORCA positions (1, 2, 0) of (pz, px, py).
    perm, sign = orca_to_pyscf_index(_layout("def2-svp", [8]))
    expect = [0, 1, 2, 4, 5, 3, 7, 8, 6, 13, 11, 9, 10, 12]
    assert perm.tolist() == expect
    assert np.all(sign == 1)


def test_f_and_g_signs_follow_iodata_table():
    # IOData/OCC: ORCA's f functions c3, s3 and g functions c3, s3, c4, s4 are negated.
    basis = {"H": [[3, [1.0, 1.0]], [4, [1.0, 1.0]]]}
    perm, sign = orca_to_pyscf_index(_layout(basis, [1]))
    # f: PySCF m = -3..3 -> ORCA positions of m in [0, 1, -1, 2, -2, 3, -3]
    assert perm[:7].tolist() == [6, 4, 2, 0, 1, 3, 5]
    assert sign[:7].tolist() == [-1, 1, 1, 1, 1, 1, -1]
    assert (perm[7:] - 7).tolist() == [8, 6, 4, 2, 0, 1, 3, 5, 7]
    assert sign[7:].tolist() == [-1, -1, 1, 1, 1, 1, 1, -1, -1]
    assert orca_m_order(2) == [0, 1, -1, 2, -2]


def test_p_order_is_physical():
    # An s function displaced along z overlaps only with pz; in ORCA order pz comes
    # first in the shell, so pyscf_to_orca must move that overlap to position 0.
    basis = {"H": [[1, [0.8, 1.0]]], "He": [[0, [0.5, 1.0]]]}
    mol = gto.M(atom="H 0 0 0; He 0 0 1.2", basis=basis, spin=None, verbose=0)
    s = mol.intor("int1e_ovlp")
    lay = OrbitalBasis.from_mole(mol).layout([1, 2])
    s_orca = pyscf_to_orca(s, lay)
    assert abs(s_orca[0, 3]) > 0.1
    assert np.allclose(s_orca[1:3, 3], 0.0, atol=1e-14)


def test_round_trip_with_f_functions():
    mol = gto.M(atom="O 0 0 0.12; H 0 0.76 -0.47; H 0 -0.76 -0.47", basis="cc-pvtz", verbose=0)
    s = mol.intor("int1e_ovlp")
    lay = OrbitalBasis.from_mole(mol).layout([8, 1, 1])
    s_orca = pyscf_to_orca(s, lay)
    assert not np.allclose(s_orca, s)
    np.testing.assert_allclose(orca_to_pyscf(s_orca, lay), s, atol=1e-12, rtol=0)
    # a congruence by a signed permutation keeps the spectrum
    np.testing.assert_allclose(np.linalg.eigvalsh(s_orca), np.linalg.eigvalsh(s), atol=1e-12)


def test_h_shell_refused():
    lay = _layout({"H": [[5, [1.0, 1.0]]]}, [1])
    with pytest.raises(OrcaConventionError, match="l=5"):
        orca_to_pyscf(np.eye(11), lay)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="14 AOs"):
        orca_to_pyscf(np.eye(3), _layout("def2-svp", [8]))


def test_import_of_hand_built_orca_matrix_with_f_functions():
    """An ORCA-order overlap written without hamnet: ORCA orders a shell's real spherical
    functions m = 0, +1, -1, +2, -2, +3, -3 (p: pz, px, py) and its f functions with
    |m| = 3 have the opposite sign of PySCF's (IOData's ``_fix_obasis_orca``); PySCF
    orders p as px, py, pz and l >= 2 as m = -l..l. def2-TZVP: O 5s3p2d1f, H 3s1p."""
    # ORCA slot k of a shell holds PySCF function orca_from_pyscf[l][k] times sign[l][k]
    orca_from_pyscf = {
        0: [0],
        1: [2, 0, 1],
        2: [2, 3, 1, 4, 0],
        3: [3, 4, 2, 5, 1, 6, 0],
    }
    sign = {0: [1], 1: [1, 1, 1], 2: [1] * 5, 3: [1, 1, 1, 1, 1, -1, -1]}
    shells = {"O": [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3], "H": [0, 0, 0, 1]}
    mol = gto.M(atom="O 0 0 0.12; H 0 0.76 -0.47; H 0 -0.76 -0.47", basis="def2-tzvp",
                verbose=0)
    assert [mol.bas_angular(b) for b in range(mol.nbas)] == shells["O"] + 2 * shells["H"]
    q, sg, start = [], [], 0
    for atom in ("O", "H", "H"):
        for l in shells[atom]:
            q += [start + k for k in orca_from_pyscf[l]]
            sg += sign[l]
            start += 2 * l + 1
    assert sorted(q) == list(range(mol.nao))
    q, sg = np.array(q), np.array(sg, dtype=float)
    s = mol.intor("int1e_ovlp")
    h = mol.intor("int1e_kin") + mol.intor("int1e_nuc")
    for m in (s, h):
        m_orca = m[np.ix_(q, q)] * np.outer(sg, sg)
        lay = OrbitalBasis.from_mole(mol).layout([8, 1, 1])
        np.testing.assert_allclose(orca_to_pyscf(m_orca, lay), m, atol=1e-13, rtol=0)
    # the f functions are really there and really sign-flipped in the fixture
    f_slots = [i for i, lab in enumerate(mol.ao_labels()) if "f" in lab.split()[-1]]
    assert len(f_slots) == 7 and (sg == -1).sum() == 2
