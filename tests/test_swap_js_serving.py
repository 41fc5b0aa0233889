"""``GET /swap.js``: gzip when accepted, an ETag per encoding, weak 304s, HEAD."""

from __future__ import annotations

import gzip
from importlib import resources

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.edges.static_asset import accepts_gzip, etag_matches
from ctm_pbx.edges.web import VisitApi, create_app

SCRIPT = resources.files("ctm_pbx.edges").joinpath("static", "swap.js").read_bytes()
CONFIG = """\
sources:
  google-ads: {preset: google_ads}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads}
"""


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    writer.run_sync(migrate)
    api = VisitApi(parse_config(CONFIG, env={}, base_dir=tmp_path), writer)
    yield await aiohttp_client(create_app(lambda: {}, api), auto_decompress=False)
    writer.close()


async def get(client, encoding: str, method: str = "GET", **headers):
    resp = await client.request(
        method, "/swap.js", headers={"Accept-Encoding": encoding, **headers}
    )
    return resp, await resp.read()


async def test_gzip_is_sent_to_who_accepts_it(client) -> None:
    resp, body = await get(client, "gzip, deflate, br")
    assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == SCRIPT and len(body) < len(SCRIPT) // 1.5
    assert resp.headers["Vary"] == "Accept-Encoding"
    assert "javascript" in resp.headers["Content-Type"]
    assert int(resp.headers["Content-Length"]) == len(body)


async def test_the_plain_script_to_who_does_not(client) -> None:
    for encoding in ("identity", "", "gzip;q=0", "br"):
        resp, body = await get(client, encoding)
        assert resp.status == 200 and body == SCRIPT, encoding
        assert "Content-Encoding" not in resp.headers and resp.headers["Vary"] == "Accept-Encoding"


async def test_each_encoding_has_its_own_etag_and_its_304(client) -> None:
    zipped, _ = await get(client, "gzip")
    plain, _ = await get(client, "identity")
    gz_tag, plain_tag = zipped.headers["ETag"], plain.headers["ETag"]
    assert gz_tag != plain_tag
    for encoding, tag in (("gzip", gz_tag), ("identity", plain_tag)):
        resp, body = await get(client, encoding, **{"If-None-Match": tag})
        assert resp.status == 304 and body == b"" and resp.headers["ETag"] == tag
        assert resp.headers["Vary"] == "Accept-Encoding"
        assert resp.headers["Cache-Control"] == "public, max-age=300"
    # the other encoding's tag does not validate this one
    resp, body = await get(client, "gzip", **{"If-None-Match": plain_tag})
    assert resp.status == 200 and gzip.decompress(body) == SCRIPT


async def test_a_weak_or_listed_etag_gets_its_304(client) -> None:
    zipped, _ = await get(client, "gzip")
    tag = zipped.headers["ETag"]
    for header in (f"W/{tag}", f'"other", W/{tag}', "*"):
        resp, _ = await get(client, "gzip", **{"If-None-Match": header})
        assert resp.status == 304, header


async def test_head_gives_the_headers_without_the_body(client) -> None:
    zipped, body = await get(client, "gzip")
    head, nothing = await get(client, "gzip", method="HEAD")
    assert head.status == 200 and nothing == b""
    for name in ("ETag", "Content-Encoding", "Vary", "Content-Length"):
        assert head.headers[name] == zipped.headers[name], name
    assert int(head.headers["Content-Length"]) == len(body)


@pytest.mark.parametrize(
    ("header", "gzip_it"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("br;q=1, *;q=0.1", True),
        ("gzip;q=0, *", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0.5, identity;q=1", False),
        ("gzip;q=bad", False),
        ("deflate, br", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding(header, gzip_it) -> None:
    assert accepts_gzip(header) is gzip_it


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ('"x",W/"abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("abc", False),
        ('W/"x"', False),
        (None, False),
    ],
)
def test_if_none_match(header, matches) -> None:
    assert etag_matches(header, '"abc"') is matches
