"""The landing page (a URL's path) and the referrer (a URL's host) as SQL expressions.

The one definition of the two report dimensions: the summary's triggers (which run in
whatever connection writes a call, sqlite3 by hand included, so no Python function can
be called there) and the raw report queries use these same expressions, so a report
gives the same rows either way. For the URLs browsers send they read what
``urllib.parse.urlsplit`` reads:

- the URL ends at its first ``?`` or ``#`` (query and fragment are not the page);
- it has an authority (``host``, ``user@host:port``) if it starts with ``//``, or with a
  scheme (a letter, then letters, digits, ``+-.``) and ``://``;
- the path is what follows the authority, from its first ``/`` ('/' when there is
  none); without an authority, the whole URL ('/' when empty: ``mailto:x`` stays whole,
  where urlsplit would drop the scheme);
- the host is the authority before its first ``:``, ASCII lowercase, without a leading
  ``www.`` (NULL when empty or when there is no authority). User info (``user@``) is kept
  (browsers send none in a referrer: the Referer header drops it) and an IPv6 address
  in brackets is not read (it gives the text up to its first ``:``): both cost every call
  string functions for what a referrer does not hold;
- NULL or '' has neither.

Plain expressions, no subquery (a correlated subquery costs tens of microseconds a row):
each part is written out where it is used, so the text is long; what a row costs is a few
dozen string functions (the triggers evaluate them as a call completes).
"""

from __future__ import annotations


def _fill(template: str, **parts: str) -> str:
    for name, sql in parts.items():
        template = template.replace("{" + name + "}", f"({sql})")
    return template


def _parts(x: str) -> dict[str, str]:
    """SQL of the parts of ``x``: ``k`` its end (its first ``?``/``#``, else one past its
    last character), ``auth`` whether it has an authority, ``w`` what follows the ``//``
    of the authority up to ``k`` (the authority and the path)."""
    k = f"instr(replace({x}, '#', '?') || '?', '?')"
    s = f"instr({x}, '//')"
    auth = _fill(
        "({s} > 0 AND {s} < {k} AND instr({x}, '/') = {s}"
        " AND ({s} = 1 OR (substr({x}, {s} - 1, 1) = ':' AND substr({x}, 1, 1) GLOB '[A-Za-z]'"
        " AND substr({x}, 1, {s} - 2) NOT GLOB '*[^A-Za-z0-9+.-]*')))",
        s=s,
        k=k,
        x=x,
    )
    w = _fill("substr({x}, {s} + 2, {k} - {s} - 2)", x=x, s=s, k=k)
    return {"k": k, "auth": auth, "w": w}


def path_sql(column: str) -> str:
    """The path of the URL in ``column`` (``/pricing``), NULL if none."""
    p = _parts(column)
    return _fill(
        "CASE WHEN {x} IS NULL OR {x} = '' THEN NULL"
        " WHEN {auth} THEN"
        " (CASE WHEN instr({w}, '/') = 0 THEN '/' ELSE substr({w}, instr({w}, '/')) END)"
        " WHEN {k} = 1 THEN '/' ELSE substr({x}, 1, {k} - 1) END",
        x=column,
        **p,
    )


def host_sql(column: str) -> str:
    """The host of the URL in ``column`` (``google.com``), NULL if none."""
    p = _parts(column)
    # the authority up to its port's : or its end
    name = _fill("lower(substr({w}, 1, instr(replace({w}, ':', '/') || '/', '/') - 1))", w=p["w"])
    return _fill(
        "CASE WHEN {x} IS NULL OR NOT {auth} THEN NULL"
        " ELSE nullif(CASE WHEN {n} LIKE 'www.%' THEN substr({n}, 5) ELSE {n} END, '') END",
        x=column,
        auth=p["auth"],
        n=name,
    )
