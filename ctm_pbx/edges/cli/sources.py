"""``ctm-pbx sources …``: tracking sources and why a visit gets one."""

from __future__ import annotations

import click

from ctm_pbx.core.sources import (
    PHASES,
    SourceMatch,
    VisitFacts,
    parse_visit,
    rank_sources,
    resolve_source,
    why_outranked,
)
from ctm_pbx.edges.cli import (
    Context,
    emit_json,
    pass_ctx,
)

# ---- sources ---------------------------------------------------------------


@click.group("sources")
def sources_group() -> None:
    """Inspect tracking sources and test which one a visit is credited to.

    \b
    Example:
      ctm-pbx sources explain --landing "https://www.example.com/?gclid=abc"
    """


@sources_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def sources_list(ctx: Context, as_json: bool) -> None:
    """List the configured sources in the order they are checked (by priority).

    \b
    Example:
      ctm-pbx sources list --json
    """
    rows = [
        {
            "name": s.name,
            "kind": s.kind.value,
            "priority": s.priority,
            "preset": s.preset,
            "last_touch": s.last_touch,
            "label": s.label,
            "rules": len(s.rules),
        }
        for s in sorted(ctx.config.sources.values(), key=lambda s: (s.priority, s.name))
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no sources configured")
        return
    click.echo(
        f"{'NAME':<20} {'KIND':<8} {'PRIORITY':>8} {'PRESET':<15} {'LAST_TOUCH':<10} "
        f"{'RULES':>5}  LABEL"
    )
    for r in rows:
        click.echo(
            f"{r['name']:<20} {r['kind']:<8} {r['priority']:>8} {r['preset'] or '-':<15} "
            f"{'yes' if r['last_touch'] else 'no':<10} {r['rules']:>5}  {r['label']}"
        )


def _visit_summary(facts: VisitFacts) -> str:
    seen = [f"click id {c}" for c in facts.click_ids]
    seen += [f"{k}={v}" for k, v in facts.params if k.startswith("utm_")]
    return ", ".join(seen) or "no click ids or UTM tags"


def _match_json(match: SourceMatch, winner: SourceMatch) -> dict:
    data = dict(match.__dict__)
    data["winner"] = match == winner
    data["lost_because"] = None if match == winner else why_outranked(winner, match)
    return data


@sources_group.command("explain")
@click.option("--landing", required=True, metavar="URL", help="The page the visitor landed on.")
@click.option("--referrer", metavar="URL", help="The page they came from (none: direct).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def sources_explain(ctx: Context, landing: str, referrer: str | None, as_json: bool) -> None:
    """Show which source a visit is credited to, by which rule, and what else matched.

    Landing-URL rules (click ids, UTM tags) are checked before referrer rules,
    and those before direct; within a phase the lower priority wins.

    \b
    Example:
      ctm-pbx sources explain --landing "https://www.example.com/?gclid=abc" \\
          --referrer https://www.google.com/
    """
    facts = parse_visit(landing, referrer)
    ranked = rank_sources(ctx.config.sources, facts)
    decision = resolve_source(ctx.config.sources, facts)
    if as_json:
        emit_json(
            {
                "source": decision.source,
                "rule": decision.rule,
                "phase": decision.phase,
                "matches": [_match_json(m, ranked[0]) for m in ranked],
                "visit": {**facts.__dict__, "params": dict(facts.params)},
            }
        )
        return
    ref = "none"
    if facts.referrer is not None:
        ref = f"{facts.referrer} ({'external' if facts.external_referrer else 'same site'})"
    elif referrer:
        ref = "unreadable, treated as none"
    click.echo(f"landing:  {facts.landing_url or 'unreadable, treated as absent'}")
    click.echo(f"referrer: {ref}")
    click.echo(f"seen:     {_visit_summary(facts)}")
    if decision.source is None:
        click.echo("source:   none: no source matched this visit")
        return
    click.echo(f"source:   {decision.source}")
    click.echo(f"rule:     {decision.rule}")
    click.echo(f"phase:    {decision.phase} (order: {' > '.join(PHASES)}; then priority)")
    others = ranked[1:]
    click.echo("also matched:" + ("" if others else " none"))
    for m in others:
        click.echo(
            f"  {m.source:<20} {m.phase:<9} priority {m.priority:<4} {m.rule}"
            f"  [{why_outranked(ranked[0], m)}]"
        )
