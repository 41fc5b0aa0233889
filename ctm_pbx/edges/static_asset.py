"""A static file served compressed: its gzip body made once, an ETag per encoding, 304s.

``swap.js`` is fetched by every first page view of every site that embeds it.
Its gzip body is compressed once when the app starts; each request only picks
the body its ``Accept-Encoding`` allows. Each encoding has its own ETag (a
cache must never answer a gzip revalidation with the identity body's tag), the
answer says ``Vary: Accept-Encoding``, and ``If-None-Match`` is compared weakly
(RFC 9110 13.1.2): a ``W/"…"`` tag, as a proxy that re-encodes sends, gets its
304 too. HEAD answers the same headers without the body.

No brotli: the gzip body already fits in the first round trip of any
connection (a TCP initial window is 10 segments), so brotli's few hundred bytes
less would not make the script arrive sooner.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Encoded:
    body: bytes
    etag: str
    encoding: str | None  # the Content-Encoding; None: the file as it is


@dataclass(frozen=True)
class StaticAsset:
    content_type: str  # a text type, in UTF-8
    cache_control: str
    identity: Encoded
    gzipped: Encoded

    @classmethod
    def of(cls, body: bytes, content_type: str, cache_control: str) -> StaticAsset:
        """Compress ``body`` (once, at app start) and tag each encoding."""
        tag = hashlib.sha256(body).hexdigest()[:16]
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        return cls(
            content_type,
            cache_control,
            Encoded(body, f'"{tag}"', None),
            Encoded(packed, f'"{tag}-gzip"', "gzip"),
        )

    def pick(self, accept_encoding: str | None) -> Encoded:
        """The body to send for this ``Accept-Encoding`` header."""
        return self.gzipped if accepts_gzip(accept_encoding) else self.identity

    async def handle(self, request: web.Request) -> web.Response:
        chosen = self.pick(request.headers.get("Accept-Encoding"))
        headers = {
            "ETag": chosen.etag,
            "Cache-Control": self.cache_control,
            "Vary": "Accept-Encoding",
        }
        if etag_matches(request.headers.get("If-None-Match"), chosen.etag):
            return web.Response(status=304, headers=headers)
        if chosen.encoding is not None:
            headers["Content-Encoding"] = chosen.encoding
        return web.Response(
            body=chosen.body, content_type=self.content_type, charset="utf-8", headers=headers
        )


def accepts_gzip(header: str | None) -> bool:
    """Whether gzip is acceptable and preferred over the file as it is (RFC 9110 12.5.3)."""
    if not header:
        return False
    quality: dict[str, float] = {}
    for item in header.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            quality[coding.lower()] = q
    gz = quality.get("gzip", quality.get("x-gzip", quality.get("*", 0.0)))
    return gz > 0 and gz >= quality.get("identity", gz)


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` against ``etag``, by weak comparison; ``*`` matches any."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False
