"""The one random train/val/test split of hamnet (numpy only).

Used for QH9's published ``random`` split (``data_tools.splits``: seed 43, 80/10/10) and
for a run's ``split.fractions`` (:mod:`hamnet.train.data`).
"""

from __future__ import annotations

import numpy as np

from hamnet.data.record_keys import SPLIT_PARTS

__all__ = ["random_split"]


def random_split(n: int, fractions=(0.8, 0.1), seed: int = 43) -> dict:
    """``{"train", "val", "test"}`` sorted record indices: a ``RandomState(seed)`` permutation
    of ``range(n)``, the first ``int(f_train n)`` train, the next ``int(f_val n)`` val, the
    rest test (QH9's definition, with ``int()`` truncation; a part may be empty for tiny n).
    """
    f_train, f_val = fractions
    perm = np.random.RandomState(seed).permutation(n)
    n_tr, n_va = int(n * f_train), int(n * f_val)
    parts = (perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :])
    return {k: sorted(int(i) for i in p) for k, p in zip(SPLIT_PARTS, parts)}
