"""The ``dynnas`` command line: strings become typed objects here and nowhere else.

Each command lives in a ``nas/cmd_*.py`` module that registers itself on the shared app.
"""

from __future__ import annotations

from nas import (
    cmd_bench,  # noqa: F401  (registers bench)
    cmd_calibrate,  # noqa: F401  (registers calibrate)
    cmd_export,  # noqa: F401  (registers export, report)
    cmd_latency,  # noqa: F401  (registers latency)
    cmd_profile,  # noqa: F401  (registers profile)
    cmd_search,  # noqa: F401  (registers search, devices)
    cmd_train,  # noqa: F401  (registers train, eval)
)
from nas.app import app

__all__ = ["app"]
