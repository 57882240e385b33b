"""LNbits' ASGI app for ``bench/payments.py``, with uvicorn's access log off as it is for boltgate.

LNbits re-attaches a handler to the ``uvicorn.access`` logger when its app is imported, so
``--no-access-log`` alone still logs every request; this module removes it again. Nothing else
changes. It runs inside LNbits' own venv: ``uvicorn lnbits_asgi:app --app-dir bench/lnbits_shim`` with the
current directory set to LNbits' ``site-packages`` (LNbits mounts ``lnbits/static`` relative to it).
"""

from __future__ import annotations

import logging

from lnbits.__main__ import app

_access = logging.getLogger("uvicorn.access")
_access.handlers = []
_access.propagate = False

__all__ = ["app"]
