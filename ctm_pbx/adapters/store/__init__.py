"""The SQLite store (sqlite-utils): plain sync functions of a ``Database``.

One writer: the daemon runs them on one thread (``ctm_pbx.adapters.store.writer``).
"""

from ctm_pbx.adapters.store.db import StoreError, open_db, open_readonly
from ctm_pbx.adapters.store.schema import migrate

__all__ = ["StoreError", "migrate", "open_db", "open_readonly"]
