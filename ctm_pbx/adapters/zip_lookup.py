"""ZIP code -> state, county and city, from the offline ``zipcodes`` dataset.

The dataset (about 42,000 US ZIP codes, bundled with the package) loads once,
in about half a second: ``warm()`` it at start-up, off the event loop.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from ctm_pbx.core.geo import ZipInfo, valid_zip

log = logging.getLogger(__name__)


def warm() -> None:
    lookup_zip("60606")


@lru_cache(maxsize=4096)
def lookup_zip(zip_code: str) -> ZipInfo | None:
    if not valid_zip(zip_code):
        return None
    import zipcodes  # loaded on first use: it reads its whole dataset

    try:
        matches = zipcodes.matching(zip_code)
    except (TypeError, ValueError) as exc:
        log.warning("ZIP lookup %r failed: %s", zip_code, exc)
        return None
    if not matches:
        return None
    m = matches[0]
    return ZipInfo(m["zip_code"], m["state"], m.get("county") or "", m.get("city") or "")
