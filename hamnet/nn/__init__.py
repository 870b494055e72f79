"""Neural-network building blocks of hamnet's Hamiltonian models.

* :mod:`~hamnet.nn.embedding`   element embedding
* :mod:`~hamnet.nn.radial`      Bessel/Gaussian radial bases, smooth cutoff, radial MLP
* :mod:`~hamnet.nn.interaction` equivariant message passing, gates, irreps helpers
* :mod:`~hamnet.nn.pair`        features of ordered atom pairs (off-diagonal blocks)
* :mod:`~hamnet.nn.tracegrad`   shell-pair trace labels, invariant encoder, v = dz/df
* :mod:`~hamnet.nn.heads`       features -> padded orbital blocks
* :mod:`~hamnet.nn.config`      validated model hyperparameters (``backbone``: equivariant | pet)
* :mod:`~hamnet.nn.base`        what every model shares: blocks -> full matrices, predict
* :mod:`~hamnet.nn.pet`         the unconstrained point-edge-transformer backbone (not equivariant)
"""
