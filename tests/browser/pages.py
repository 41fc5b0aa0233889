"""Generated test pages, shared by the browser tests and ``bench/swap_page.py``."""

from __future__ import annotations


def big_page(api: str, rows: int = 1000) -> str:
    """A page of ``rows`` rows of 5 elements (5,000 elements, ~8,000 text nodes), with a
    target number every 20 rows (half of them in tel: links)."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Big</title>",
        "<script>window.ctmEvents=[];document.addEventListener('ctm:swapped',"
        "function(e){ctmEvents.push(Object.assign({t:performance.now()},e.detail))})</script>",
        f"<script async src='{api}/swap.js'></script></head><body>",
    ]
    for i in range(rows):
        phone = ""
        if i % 20 == 0:
            phone = " <a href='tel:+13125550100'>(312) 555-0100</a>" if i % 40 else " 312-555-0100"
        out.append(
            f"<div class='row'><span>Item {i}</span> <b>SKU {i * 7919 % 100000:05d}</b>"
            f" <i>in stock: {i % 13}</i> <em>price ${i % 97}.99</em>{phone}</div>"
        )
    out.append("</body></html>")
    return "\n".join(out)
