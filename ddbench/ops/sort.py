"""The CPU sort backend of the per-channel sort of point-wise features (SADM, 3DDP), recorded in every result.

``DDBENCH_SORT`` = ``numpy`` (default: ``np.sort`` / ``np.argsort``, an order of magnitude faster than
``torch.sort`` on CPU for (B, 1024, 1024) float32) or ``torch``. The sort itself is
:func:`ddbench.methods.losses.sort_pointwise`; this module only names the choice, so that the ops layer
(:func:`ddbench.ops.backends.backend_record`) can record it without importing the methods.
"""

from __future__ import annotations

import os

from ddbench.errors import ConfigError

SORT_BACKENDS = ("numpy", "torch")


def sort_backend() -> str:
    """The CPU sort in use: ``numpy`` (default) or ``torch`` (``DDBENCH_SORT=torch``)."""
    value = os.environ.get("DDBENCH_SORT", "numpy").strip().lower() or "numpy"
    if value not in SORT_BACKENDS:
        raise ConfigError(f"DDBENCH_SORT={value!r} is not a sort backend; use {' or '.join(SORT_BACKENDS)}")
    return value
