"""Neural-network building blocks of hamnet's Hamiltonian models.

* :mod:`~hamnet.nn.embedding`   element embedding
* :mod:`~hamnet.nn.radial`      Bessel/Gaussian radial bases, smooth cutoff, radial MLP
* :mod:`~hamnet.nn.interaction` equivariant message passing, gates, irreps helpers
* :mod:`~hamnet.nn.pair`        features of ordered atom pairs (off-diagonal blocks)
* :mod:`~hamnet.nn.tracegrad`   shell-pair trace labels, invariant encoders, v = dz/df, f + g(v)
* :mod:`~hamnet.nn.heads`       features -> padded orbital blocks
* :mod:`~hamnet.nn.config`      one validated config class per backbone, and the registry
                                  :data:`~hamnet.nn.config.BACKBONES` (chosen by ``backbone``)
* :mod:`~hamnet.nn.base`        what every model shares: symmetrize and mask, full matrices, predict
* :mod:`~hamnet.nn.equivariant` the O(3)-equivariant e3nn backbone with TraceGrad
* :mod:`~hamnet.nn.pet`         the unconstrained point-edge-transformer backbone (not equivariant)
* :mod:`~hamnet.nn.so2`         the edge-aligned SO(2)-convolution backbone (``backbone: so2``, the default)
* :mod:`~hamnet.nn.sparse_pairs` O(N) neighbour search, pair rows, sparse (nao, nao) assembly
"""
