"""Crawlers and headless tools, by their User-Agent: they never take a pool number.

The patterns are the ``crawler-user-agents`` package's: the community-maintained
list (monperrus/crawler-user-agents, ~1,500 patterns with sample user agents,
released every few weeks) of search and AI crawlers, link previewers, monitors,
HTTP libraries (curl, python-requests, aiohttp, Go-http-client, axios, …) and
headless browsers (HeadlessChrome, PhantomJS). A request without a User-Agent is
one too: every browser sends one. A bot that claims to be a browser is not caught
here; the per-client cap and unconfirmed leases bound what it can hold.
"""

from __future__ import annotations

import functools

from crawleruseragents import is_crawler as _listed

CACHE = 8192  # distinct user agents remembered: a site's visitors' browsers repeat


@functools.lru_cache(maxsize=CACHE)
def is_crawler(user_agent: str | None) -> bool:
    """True for a listed crawler or tool, or no User-Agent at all (one list look-up is
    ~0.5 ms: answers are cached by user agent)."""
    if not user_agent or not user_agent.strip():
        return True
    return _listed(user_agent)
