"""A deterministic list of QM9-like molecules (H, C, N, O, F; at most 9 heavy atoms).

QM9 itself cannot be downloaded here, so hamnet enumerates a stand-in: a fixed list of
small scaffolds written out below (alkanes, alcohols, amines, carbonyls, nitriles,
rings and heteroaromatics, fluorinated species), plus every molecule obtained by
replacing one hydrogen on a carbon of a scaffold with one of :data:`SUBSTITUENTS`.
Products are canonicalized with RDKit, de-duplicated, kept when they have at most
nine heavy atoms, sorted by canonical SMILES and shuffled with a fixed legacy
``numpy.random.RandomState`` seed, so that molecule ``k`` is the same on every run with
the same RDKit (canonical SMILES can change between RDKit releases, a documented
limitation; datasets store the SMILES in each ``source_id``).
"""

from __future__ import annotations

import functools

import numpy as np

MAX_HEAVY = 9
ELEMENTS = frozenset({1, 6, 7, 8, 9})

#: Scaffolds, 1 to 9 heavy atoms, all neutral closed-shell.
SCAFFOLDS = (
    # 1-3 heavy atoms
    "C", "N", "O", "CC", "C=C", "C#C", "CO", "CN", "C=O", "C#N", "CF", "NN", "NO",
    "CCC", "CC=O", "CCO", "COC", "CC#N", "C=CC", "CC#C", "CCN", "CNC", "NC=O", "OC=O",
    "C1CC1", "C1CO1", "C1CN1", "FC(F)F", "N#CC#N", "O=CC=O",
    # 4-5 heavy atoms
    "CCCC", "CC(C)C", "CCCO", "CC(C)O", "CCOC", "CC(=O)C", "CC(=O)O", "CC(N)=O",
    "NC(N)=O", "C1CCC1", "C1CCO1", "C=CC=C", "C#CC#C", "CC#CC", "CCC#N", "OCCO",
    "c1cc[nH]c1", "c1ccoc1", "c1cnc[nH]1", "c1cocn1", "c1cn[nH]c1", "C1CCCC1", "C1CCOC1",
    "C1CCNC1", "CCCCC", "CC(C)(C)C", "O=C1CCC1", "N#CCC#N", "FC(F)(F)C",
    # 6-7 heavy atoms
    "c1ccccc1", "c1ccncc1", "c1cnccn1", "c1ncncn1", "C1CCCCC1", "C1CCOCC1", "C1CNCCN1",
    "O=C1CCCC1", "CCCCCC", "CCCCCO", "CC(C)CC(C)=O", "O=c1cc[nH]cc1", "Cc1ccco1",
    "OC1CCCC1", "C1CC2CC2C1", "C1CC1C1CC1", "CC(=O)OC", "COC(=O)C=C", "O=C1NC(=O)CC1",
    "C1=CCCCC1", "CCCCCCC", "C1CCCCCC1", "c1ccc2c(c1)CC2",
    # 8-9 heavy atoms
    "CCCCCCCC", "CCCCCCCCC", "C1CCCCCCC1", "CCCCCCCO", "CC(C)(C)CC(C)(C)C",
    "O=C1C=CNC(=O)N1", "c1ccc2[nH]ccc2c1", "c1ccc2occc2c1", "c1ccc2[nH]cnc2c1",
    "OC1CCCCC1", "C1CC2CCC1C2", "N#Cc1ccccc1", "O=Cc1ccccc1", "Oc1ccccc1F",
    "CC(=O)c1ccco1", "OCC(O)CO", "CC(O)C(C)O", "CCOC(=O)CC", "FC(F)(F)C(F)(F)F",
)

#: Groups that replace one hydrogen of a carbon; the first atom bonds to that carbon.
SUBSTITUENTS = ("F", "O", "N", "C", "C#N", "C=O", "OC", "C#C")


def _canonical(mol) -> str | None:
    from rdkit import Chem

    try:
        Chem.SanitizeMol(mol)
    except Exception:
        return None
    if mol.GetNumHeavyAtoms() > MAX_HEAVY:
        return None
    if any(a.GetAtomicNum() not in ELEMENTS or a.GetFormalCharge() for a in mol.GetAtoms()):
        return None
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return None
    return Chem.MolToSmiles(mol)


def _substituted(smiles: str) -> list[str]:
    from rdkit import Chem

    base = Chem.MolFromSmiles(smiles)
    out = []
    ranks = list(Chem.CanonicalRankAtoms(base, breakTies=False))
    seen_ranks = set()
    for atom in base.GetAtoms():
        if atom.GetAtomicNum() != 6 or atom.GetTotalNumHs() == 0:
            continue
        if ranks[atom.GetIdx()] in seen_ranks:  # symmetry-equivalent site
            continue
        seen_ranks.add(ranks[atom.GetIdx()])
        for sub_smiles in SUBSTITUENTS:
            sub = Chem.MolFromSmiles(sub_smiles)
            if base.GetNumHeavyAtoms() + sub.GetNumHeavyAtoms() > MAX_HEAVY:
                continue
            combo = Chem.RWMol(Chem.CombineMols(base, sub))
            combo.AddBond(atom.GetIdx(), base.GetNumAtoms(), Chem.BondType.SINGLE)
            smi = _canonical(combo.GetMol())
            if smi is not None:
                out.append(smi)
    return out


@functools.lru_cache(maxsize=4)
def qm9like_smiles(seed: int = 20240) -> tuple[str, ...]:
    """All enumerated molecules as canonical SMILES, in a fixed shuffled order.

    Parameters
    ----------
    seed : int
        Seed of the legacy ``RandomState`` permutation (stable across numpy versions).
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    try:
        found = set()
        for smi in SCAFFOLDS:
            mol = Chem.MolFromSmiles(smi)
            if mol is None:
                raise ValueError(f"scaffold {smi!r} is not valid SMILES")
            canon = _canonical(mol)
            if canon is None:
                raise ValueError(f"scaffold {smi!r} is not QM9-like (H, C, N, O, F, <= 9 heavy)")
            found.add(canon)
            found.update(_substituted(smi))
    finally:
        RDLogger.EnableLog("rdApp.*")
    ordered = sorted(found)
    perm = np.random.RandomState(seed).permutation(len(ordered))
    return tuple(ordered[i] for i in perm)
