"""hamnet: equivariant prediction of Kohn-Sham / Fock Hamiltonians for PySCF."""

__version__ = "0.1.0"
