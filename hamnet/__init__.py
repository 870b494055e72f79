"""hamnet: equivariant prediction of Kohn-Sham / Fock Hamiltonians for PySCF."""

__version__ = "0.1.0"

_LAZY = {"build_model", "load_model", "save_model"}


def __getattr__(name):
    # Imported on first use so that `import hamnet` (and `hamnet --help`) stays fast.
    if name in _LAZY:
        from hamnet import model

        return getattr(model, name)
    if name == "pretrained_models":
        from hamnet.pretrained import pretrained_models

        return pretrained_models
    raise AttributeError(f"module 'hamnet' has no attribute {name!r}")
