"""The Google Ads click-conversion CSV for Google Ads' scheduled uploads from an HTTPS
URL: ``/ads/<google_ads.feed_token>.csv`` with HTTP basic auth, on the dashboard's
listener (outside the session login: Google Ads fetches it on its own).

Each fetch holds the conversions of the last ``feed_days`` days (calls started
then, oldest first), so it is incremental by conversion time, and the same call
always gives the same row: fetching it again imports nothing twice.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import logging
from datetime import timedelta

from aiohttp import web

from ctm_pbx.adapters.store import ads as ads_store
from ctm_pbx.core.integrations import ads_time_zone

log = logging.getLogger(__name__)

REALM = 'Basic realm="ctm-pbx Google Ads feed", charset="UTF-8"'


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def ads_feed(request: web.Request, dash) -> web.StreamResponse:  # noqa: ANN001
    """The feed's handler (``dash``: the app's ``Dashboard``)."""
    ads = dash.config.google_ads
    if ads is None or not ads.feed_token or not _same(request.match_info["token"], ads.feed_token):
        raise web.HTTPNotFound()
    given = _basic_auth(request.headers.get("Authorization", ""))
    if given is None or not (
        _same(given[0], ads.feed_username) and _same(given[1], ads.feed_password or "")
    ):
        allowed, _wait = dash.client_limit.allow(request.remote or "", dash.clock().timestamp())
        if not allowed:
            raise web.HTTPTooManyRequests(text="too many wrong logins: wait a minute")
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": REALM})
    now = dash.clock()
    start = now - timedelta(days=ads.feed_days)
    found = await dash.reader.run(ads_store.conversions, ads, dash.qualified, start, now)
    out = io.StringIO()
    ads_store.write_csv(out, found, ads_time_zone(dash.config))
    log.info("Google Ads feed fetched by %s: %d conversions", request.remote, len(found))
    return web.Response(
        text=out.getvalue(), content_type="text/csv",
        headers={"Content-Disposition": 'inline; filename="conversions.csv"'},
    )  # fmt: skip
