"""The data contract of the network: keys of the graph and batch dicts of tensors.

Import as ``from hamnet import graph_keys as GK``. The keys of dataset *records* are in
:mod:`hamnet.data.record_keys` (``RK``); :data:`Z` and :data:`POS` are defined here once
and shared by both.

A *graph* (one molecule, :func:`hamnet.graph.molecule_graph`) and a *batch* (several
molecules, :func:`hamnet.graph.collate`) are ``dict[str, torch.Tensor]`` with the input
keys below; the model adds the output keys. Shapes use

* ``n_atoms``  atoms of all molecules in the batch,
* ``n_pairs``  ordered atom pairs ``(i, j)``, ``i != j``, of the same molecule
  (molecule by molecule, each in :meth:`hamnet.basis.OrbitalBasis.pair_index` order),
* ``n_mol``    molecules,
* ``n_pad``    :attr:`hamnet.basis.OrbitalBasis.n_pad`, AOs of the padded atom layout,
* ``n_sp``     :attr:`hamnet.basis.OrbitalBasis.n_slot_pairs`, shell pairs of a block.

Blocks are in PySCF AO order inside the padded layout (see :mod:`hamnet.basis`) and in
Hartree; entries that do not exist for the element pair are zero and masked out.
"""

# ---- inputs (graph.molecule_graph / graph.collate) ---------------------------------------
Z = "Z"  # (n_atoms,) int64 | atomic numbers
POS = "pos"  # (n_atoms, 3) float | positions, Angstrom
BATCH = "batch"  # (n_atoms,) int64 | molecule of each atom, 0..n_mol-1
PTR = "ptr"  # (n_mol + 1,) int64 | atoms of molecule m are ptr[m]:ptr[m+1]
PAIR_INDEX = "pair_index"  # (2, n_pairs) int64 | (i, j) of each off-diagonal block, global atom ids
PAIR_REVERSE = "pair_reverse"  # (n_pairs,) int64 | row of pair (j, i) for pair (i, j)
PAIR_PTR = "pair_ptr"  # (n_mol + 1,) int64 | pairs of molecule m are pair_ptr[m]:pair_ptr[m+1]

# ---- optional targets (graph.molecule_graph(..., fock=...)) ------------------------------
TARGET_DIAG = "target_diag"  # (n_atoms, n_pad, n_pad) float | target blocks (i, i), Hartree
TARGET_OFFDIAG = "target_offdiag"  # (n_pairs, n_pad, n_pad) float | target blocks (i, j), Hartree

# ---- model outputs (HamiltonianModel.forward) ----------------------------------------------
DIAG = "diag"  # (n_atoms, n_pad, n_pad) float | predicted blocks (i, i), Hartree, symmetric
OFFDIAG = "offdiag"  # (n_pairs, n_pad, n_pad) float | predicted blocks (i, j), Hartree;
#                     offdiag[pair_reverse] == offdiag.transpose(-1, -2) exactly
DIAG_MASK = "diag_mask"  # (n_atoms, n_pad, n_pad) bool | entries that exist for (Z_i, Z_i)
OFFDIAG_MASK = "offdiag_mask"  # (n_pairs, n_pad, n_pad) bool | entries that exist for (Z_i, Z_j)
DIAG_TRACE = "diag_trace"  # (n_atoms, n_sp) float | predicted normalized shell-pair traces, Hartree
DIAG_TRACE_HIDDEN = "diag_trace_hidden"  # (K-1, n_atoms, n_sp) float | the same from the TraceGrads of layers 0 .. K-2
OFFDIAG_TRACE = "offdiag_trace"  # (n_pairs, n_sp) float | same for off-diagonal blocks, Hartree
DIAG_TRACE_MASK = "diag_trace_mask"  # (n_atoms, n_sp) bool | shell pairs that exist for (Z_i, Z_i)
OFFDIAG_TRACE_MASK = "offdiag_trace_mask"  # (n_pairs, n_sp) bool | same for (Z_i, Z_j)

# ---- loss components (loss.hamiltonian_loss) -------------------------------------------------
LOSS = "loss"  # () float | L_H + trace_weight * L_T (what is minimized)
LOSS_H = "loss_h"  # () float | block loss over existing entries, Hartree^2 (mse) or Hartree (mae)
LOSS_T = "loss_t"  # () float | trace loss over existing shell pairs, same units as LOSS_H
LOSS_EIG = "loss_eig"  # () float | orbital-energy loss (spectral.SpectralLoss), Hartree (MAE)
LOSS_DENSITY = "loss_density"  # () float | occupied-subspace projector loss, dimensionless in [0, 1]

# ---- optional spectral inputs (graph.molecule_graph(..., overlap=S)), for hamnet.spectral ----
# ``n_entries`` = sum over molecules of nao**2: every entry (mu, nu) of every molecule's full
# (nao, nao) AO matrix once, molecule by molecule, row-major within a molecule.
NAO = "nao"  # (n_mol,) int64 | AOs of each molecule
NOCC = "nocc"  # (n_mol,) int64 | doubly occupied orbitals of each molecule (closed shell)
AO_SRC = "ao_src"  # (n_entries,) int64 | position of entry (mu, nu) in the flattened
#                    concat([diag, offdiag]) blocks of the batch (any block keys: DIAG, TARGET_*, LOWDIN_*)
AO_DST = "ao_dst"  # (n_entries,) int64 | position of entry (mu, nu) in the flattened padded
#                    (n_mol, nao_max, nao_max) matrix, nao_max = max(NAO)
LOWDIN_DIAG = "lowdin_diag"  # (n_atoms, n_pad, n_pad) float64 | blocks (i, i) of X = S^-1/2, dimensionless
LOWDIN_OFFDIAG = "lowdin_offdiag"  # (n_pairs, n_pad, n_pad) float64 | blocks (i, j) of X = S^-1/2

INPUT_KEYS = (Z, POS, BATCH, PTR, PAIR_INDEX, PAIR_REVERSE, PAIR_PTR)
TARGET_KEYS = (TARGET_DIAG, TARGET_OFFDIAG)
#: Present in all graphs of a batch or in none (graphs built with an overlap matrix).
SPECTRAL_KEYS = (NAO, NOCC, AO_SRC, AO_DST, LOWDIN_DIAG, LOWDIN_OFFDIAG)
# Keys indexed by atom / by pair, used by collate() to concatenate molecules.
ATOM_KEYS = (Z, POS, TARGET_DIAG, LOWDIN_DIAG)
PAIR_KEYS = (TARGET_OFFDIAG, LOWDIN_OFFDIAG)
