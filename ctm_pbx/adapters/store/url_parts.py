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
- the host is the authority after its ``@`` (if any: a literal second ``@`` is not a
  URL's), before its first ``:``, ASCII lowercase, without a leading ``www.`` (NULL when
  empty or when there is no authority; an IPv6 address in brackets is not read: rare in
  a referrer, it gives the text up to its first ``:``);
- NULL or '' has neither.

Plain expressions, no subquery (a correlated subquery costs tens of microseconds a row):
each part is written out where it is used, so the text is long but each row costs a few
dozen string functions.
"""

from __future__ import annotations


def _fill(template: str, **parts: str) -> str:
    for name, sql in parts.items():
        template = template.replace("{" + name + "}", f"({sql})")
    return template


def _parts(x: str) -> dict[str, str]:
    """SQL of the positions in ``x``: ``k`` the end (the first ``?``/``#``, else one past
    the last character), ``s`` the authority's ``//``, ``auth`` whether there is one,
    ``e`` where the authority ends (its first ``/``, or ``k``)."""
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
    slash = _fill("instr(substr({x}, {s} + 2), '/')", x=x, s=s)  # after the //, 0: none
    e = _fill("CASE WHEN {q} > 0 AND {s} + 1 + {q} < {k} THEN {s} + 1 + {q} ELSE {k} END",
              q=slash, s=s, k=k)  # fmt: skip
    return {"k": k, "s": s, "auth": auth, "e": e}


def path_sql(column: str) -> str:
    """The path of the URL in ``column`` (``/pricing``), NULL if none."""
    p = _parts(column)
    return _fill(
        "CASE WHEN {x} IS NULL OR {x} = '' THEN NULL"
        " WHEN {auth} THEN (CASE WHEN {e} < {k} THEN substr({x}, {e}, {k} - {e}) ELSE '/' END)"
        " WHEN {k} = 1 THEN '/' ELSE substr({x}, 1, {k} - 1) END",
        x=column,
        **p,
    )


def host_sql(column: str) -> str:
    """The host of the URL in ``column`` (``google.com``), NULL if none."""
    p = _parts(column)
    rest = _fill("substr({x}, {s} + 2)", x=column, s=p["s"])  # after the //
    end = _first_of("{r}", "/?#")  # of the authority, within rest
    at = _fill("CASE WHEN instr({r}, '@') BETWEEN 1 AND {end} - 1 THEN instr({r}, '@') ELSE 0 END",
               end=end).replace("{r}", f"({rest})")  # fmt: skip
    host = _fill("substr({r}, {at} + 1)", r=rest, at=at)  # from the user info's @ on
    cut = _fill("lower(substr({h}, 1, " + _first_of("{h}", ":/?#") + " - 1))", h=host)
    return _fill(
        "CASE WHEN {x} IS NULL OR NOT {auth} THEN NULL"
        " ELSE nullif(CASE WHEN {c} LIKE 'www.%' THEN substr({c}, 5) ELSE {c} END, '') END",
        x=column,
        auth=p["auth"],
        c=cut,
    )


def _first_of(text: str, chars: str) -> str:
    """The position of the first of ``chars`` in ``text``, else one past its end."""
    mapped = text
    for c in chars[1:]:
        mapped = f"replace({mapped}, '{c}', '{chars[0]}')"
    return f"instr({mapped} || '{chars[0]}', '{chars[0]}')"
