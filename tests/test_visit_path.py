"""The store's job for a page view: one write of the visitor's row, and nothing read or
written that grows with the config (sources, pools) beyond the visit's own source."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import lease_index, migrate, open_db
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
from ctm_pbx.core.model import Config
from ctm_pbx.core.source_index import SourceIndex
from ctm_pbx.core.visit_plan import VisitPlan
from ctm_pbx.edges.cli import sync_config_numbers
from tests.helpers import BROWSER_UA

SHOP = "https://shop.example.com"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def config(sources: int, base_dir: Path) -> Config:
    """``sources`` on-site sources ``srcK`` (``utm_source=srcK``), a pool ``p-K`` of two
    numbers each, and the direct preset."""
    rule = "{{kind: onsite, match: [{{landing_params: {{utm_source: src{0}}}}}]}}"
    numbers = "".join(
        f'  - {{number: "+1312555{2 * k:04d}", pool: p-{k}, route: main}}\n'
        f'  - {{number: "+1312555{2 * k + 1:04d}", pool: p-{k}, route: main}}\n'
        for k in range(sources)
    )
    text = (
        "sources:\n"
        + "".join(f"  src{k}: {rule.format(k)}\n" for k in range(sources))
        + "  direct: {preset: direct}\n"
        + 'targets:\n  sales: "+1 312 666 0100"\n'
        + "pools:\n"
        + "".join(f"  p-{k}: {{source: src{k}, target: sales}}\n" for k in range(sources))
        + 'receiving_numbers:\n  desk: {number: "+13126660101", dial: "PJSIP/phone1"}\n'
        + "routes:\n  main: {type: single, targets: [desk]}\n"
        + "tracking_numbers:\n"
        + numbers
    )
    return parse_config(text, env={}, base_dir=base_dir)


class Store:
    """A store as the writer keeps it (its lease index attached), statements traced."""

    def __init__(self, cfg: Config, path: Path) -> None:
        self.cfg = cfg
        self.db = open_db(path)
        migrate(self.db)
        sync_config_numbers(cfg, self.db)
        lease_index.attach(self.db)
        self.plan = VisitPlan.of(cfg, SourceIndex(cfg.sources))
        self.statements: list[str] = []

    def visit(self, req: VisitRequest, now: datetime):
        self.statements = []
        self.db.conn.set_trace_callback(self.statements.append)
        try:
            with self.db.conn:
                return handle_visit(self.db, self.cfg, req, now, self.plan.index, self.plan)
        finally:
            self.db.conn.set_trace_callback(None)

    def visitor_writes(self) -> list[str]:
        return [s for s in self.statements if re.match(r"(INSERT INTO|UPDATE) visitors", s)]

    def pools_named(self) -> set[str]:
        return {m for s in self.statements for m in re.findall(r"'(p-\d+)'", s)}

    def shape(self) -> list[str]:
        """The statements without their values: the same work whatever the ids."""
        return [re.sub(r"'[^']*'|\b\d+\b", "?", s) for s in self.statements]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    small = Store(config(3, tmp_path), tmp_path / "small.db")
    large = Store(config(300, tmp_path), tmp_path / "large.db")
    yield small, large
    small.db.conn.close()
    large.db.conn.close()


def page(visitor_id: str | None, query: str, ip: str = "203.0.113.7") -> VisitRequest:
    return VisitRequest(visitor_id, f"{SHOP}/?{query}", ip=ip, user_agent=BROWSER_UA)


def test_a_new_visitor_is_one_write_of_its_row_and_only_its_sources_pool(stores) -> None:
    small, large = stores
    for store in stores:
        got = store.visit(page(None, "utm_source=src2&gclid=a"), T0)
        assert got.created and got.numbers["+13126660100"]["pool"] == "p-2"
        assert len(store.visitor_writes()) == 1, store.statements
        assert not any(s.startswith("SELECT") and "visitors" in s for s in store.statements)
        assert store.pools_named() == {"p-2"}, "no other pool read or written"
    assert small.shape() == large.shape(), "the same statements with 3 pools or 300"


def test_a_known_visitors_new_visit_and_next_page_write_its_row_once(stores) -> None:
    small, large = stores
    for store in stores:
        first = store.visit(page(None, "utm_source=src1"), T0)
        later = T0 + timedelta(minutes=10)
        again = store.visit(page(first.visitor_id, "utm_source=src1&gclid=b"), later)
        assert again.known and first.known
        assert again.known.page_visit != first.known.page_visit, "an ad click: a new visit"
        assert len(store.visitor_writes()) == 1, store.statements
        assert store.pools_named() == {"p-1"}
        assert again.numbers == first.numbers, "its number back"
        inner = VisitRequest(
            first.visitor_id, f"{SHOP}/pricing", SHOP + "/", "203.0.113.7", BROWSER_UA
        )
        store.visit(inner, later + timedelta(minutes=1))
        assert len(store.visitor_writes()) == 1, store.statements
    assert small.shape() == large.shape()


def test_a_visitor_without_a_source_is_stored_without_the_visit_that_set_one(
    tmp_path: Path,
) -> None:
    store = Store(config(2, tmp_path), tmp_path / "s.db")
    # a referrer no source knows (so not direct either)
    req = VisitRequest(None, f"{SHOP}/", "https://blog.example.net/", "203.0.113.7", BROWSER_UA)
    got = store.visit(req, T0)
    row = store.db.conn.execute(
        "SELECT source, visit_id FROM visitors WHERE id = ?", (got.visitor_id,)
    ).fetchone()
    assert got.source is None and row == (None, None)
    later = store.visit(page(got.visitor_id, "utm_source=src0"), T0 + timedelta(hours=1))
    row = store.db.conn.execute(
        "SELECT source, visit_id FROM visitors WHERE id = ?", (got.visitor_id,)
    ).fetchone()
    assert row == ("src0", later.visit_id)
    store.db.conn.close()
