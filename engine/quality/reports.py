"""Readable quality reports from the ledger: pass rates per stream and rule, and an HTML dashboard.

Everything here is read from `wfm_meta` — windows (`sync_windows`), rejected rows
(`quarantine`) and reconciliation results (`check_results`) — so a report covers any period,
not just the last run. Four kinds of rule appear, each with its own unit:

- `window gate` (windows): windows landed out of windows landed or held back;
- `rows` (rows): rows that passed parsing and the row checks, out of rows fetched;
- a row check or parse field (rows): rows it rejected, against the stream's rows fetched;
- a reconciliation rule (partitions): days that passed, out of days checked.

`write_dashboard` renders `quality.html` next to the Great Expectations Data Docs: the daily
row pass rate per stream as an inline SVG line chart, quarantined rows per stream and status as
bars, the table of pass rates, and the partitions held back. No plotting library is needed.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psycopg

from engine.landing import ledger

__all__ = ["PassRate", "pass_rates", "write_dashboard"]

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
STATUS_COLOURS = {"held": "#d62728", "replayed": "#2ca02c", "discarded": "#7f7f7f"}


@dataclass(frozen=True)
class PassRate:
    """How often one rule passed for one stream (or table) since a date."""

    stream: str
    rule: str
    unit: str          # windows | rows | partitions
    checked: int
    passed: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.checked if self.checked else None


def pass_rates(conn: psycopg.Connection, since: dt.datetime) -> list[PassRate]:
    """Every stream's window gate, row checks and reconciliation rules since `since`."""
    ledger.ensure_meta(conn)
    fetched: dict[str, int] = {}
    out: list[PassRate] = []
    for stream, windows, landed, rows, quarantined in conn.execute(
            """SELECT stream, count(*), count(*) FILTER (WHERE status = 'landed'), coalesce(sum(rows_fetched), 0),
                      coalesce(sum(rows_quarantined), 0) FROM wfm_meta.sync_windows
               WHERE status IN ('landed', 'held') AND landed_at >= %s GROUP BY 1 ORDER BY 1""", (since,)):
        fetched[stream] = int(rows)
        out += [PassRate(stream, "window gate", "windows", windows, landed),
                PassRate(stream, "rows", "rows", int(rows), max(0, int(rows) - int(quarantined)))]
    failed: dict[tuple[str, str], int] = defaultdict(int)
    for stream, reason, count in conn.execute(
            """SELECT stream, reason, count(*) FROM wfm_meta.quarantine WHERE quarantined_at >= %s
               GROUP BY 1, 2""", (since,)):
        for rule in _rules_of(reason):
            failed[(stream, rule)] += count
    for (stream, rule), count in sorted(failed.items()):
        checked = max(fetched.get(stream, 0), count)
        out.append(PassRate(stream, rule, "rows", checked, checked - count))
    for table, check, checked, passed in conn.execute(
            """SELECT table_name, check_name, count(*), count(*) FILTER (WHERE success) FROM wfm_meta.check_results
               WHERE checked_at >= %s GROUP BY 1, 2 ORDER BY 1, 2""", (since,)):
        out.append(PassRate(table, check, "partitions", checked, passed))
    return sorted(out, key=lambda r: (r.stream, r.unit != "windows", r.rule != "rows", r.rule))


def _rules_of(reason: str) -> list[str]:
    """The rules a quarantine reason names: check names, `parse <field>`, or `schema drift`."""
    if reason.startswith("schema drift"):
        return ["schema drift"]
    if reason.startswith("field "):
        return ["parse " + reason[6:].split(":", 1)[0]]
    if reason.startswith("record is a"):
        return ["parse record"]
    return [part.removeprefix("failed ") for part in reason.split("; ") if part]


def daily_row_rates(conn: psycopg.Connection, since: dt.datetime) -> dict[str, list[tuple[dt.date, float]]]:
    """Per stream, the share of fetched rows that passed, per UTC day of landing."""
    series: dict[str, list[tuple[dt.date, float]]] = defaultdict(list)
    for stream, day, rows, quarantined in conn.execute(
            """SELECT stream, (landed_at AT TIME ZONE 'UTC')::date, sum(rows_fetched), sum(rows_quarantined)
               FROM wfm_meta.sync_windows WHERE status IN ('landed', 'held') AND landed_at >= %s
               AND rows_fetched > 0 GROUP BY 1, 2 ORDER BY 1, 2""", (since,)):
        series[stream].append((day, max(0.0, 1 - float(quarantined) / float(rows))))
    return dict(series)


def quarantine_counts(conn: psycopg.Connection, since: dt.datetime) -> dict[str, dict[str, int]]:
    """Quarantined rows per stream and status (held, replayed, discarded)."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for stream, status, count in conn.execute(
            """SELECT stream, status, count(*) FROM wfm_meta.quarantine WHERE quarantined_at >= %s
               GROUP BY 1, 2 ORDER BY 1, 2""", (since,)):
        counts[stream][status] = int(count)
    return dict(counts)


def write_dashboard(database_url: str, docs_dir: Path | str, since: dt.datetime | None = None) -> Path:
    """Render `<docs_dir>/quality.html` from the ledger; returns its path."""
    since = since or dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    with psycopg.connect(database_url) as conn:
        rates = pass_rates(conn, since)
        series = daily_row_rates(conn, since)
        quarantined = quarantine_counts(conn, since)
        held = conn.execute("""SELECT h.table_name, h.partition, h.check_name,
                                   CASE WHEN h.scope = '' THEN 'all' ELSE h.scope END, (
                                   SELECT c.unexpected_count || ' rows, e.g. ' || coalesce(c.examples ->> 0, '')
                                   FROM wfm_meta.check_results c WHERE c.table_name = h.table_name
                                   AND c.partition = h.partition AND c.check_name = h.check_name AND NOT c.success
                                   ORDER BY c.checked_at DESC LIMIT 1)
                               FROM wfm_meta.partition_holds h ORDER BY 1, 2, 3""").fetchall()
    path = Path(docs_dir) / "quality.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>Data quality</h1><p>Since {since:%Y-%m-%d %H:%M} UTC, generated "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Reconciliation runs in detail: "
            f"<a href='index.html'>Great Expectations Data Docs</a>.</p>",
            "<h2>Rows passing the row checks, per day</h2>", line_chart(series),
            "<h2>Quarantined rows per stream</h2>", bar_chart(quarantined),
            "<h2>Partitions held back by reconciliation</h2>",
            _table(("table", "partition", "failing rule", "rows held", "last result"), held) if held else "<p>None.</p>",
            "<h2>Pass rates</h2>",
            _table(("stream", "rule", "unit", "checked", "passed", "pass rate"),
                   [(r.stream, r.rule, r.unit, r.checked, r.passed, _percent(r.rate)) for r in rates])]
    path.write_text(PAGE.format(body="\n".join(body)), encoding="utf-8")
    return path


def reconcile_markdown(outcome, label: str, dashboard: Path) -> str:
    """A Prefect artifact for one reconciliation step: failing rules first, links to the reports."""
    failing = [r for r in outcome.results if not r.success]
    lines = [f"| {r.check} | {r.severity} | {r.table} {r.partition} | {r.unexpected_count} | "
             f"{'; '.join(r.examples[:2]).replace('|', '/')} |" for r in failing]
    passed = len(outcome.results) - len(failing)
    return (f"### Reconciliation after `{label}`\n\n{passed} of {len(outcome.results)} rule-days passed; "
            f"{len(outcome.held)} partition(s) held back, {len(outcome.released)} released.\n\n"
            + ("| rule | severity | partition | rows | examples |\n|---|---|---|---|---|\n" + "\n".join(lines)
               + "\n\n" if lines else "")
            + f"[Great Expectations Data Docs]({Path(outcome.docs).resolve().as_uri()}) · "
              f"[quality dashboard]({dashboard.resolve().as_uri()})\n")


def line_chart(series: dict[str, list[tuple[dt.date, float]]], width: int = 720, height: int = 260) -> str:
    """One polyline per stream over days; y from just below the lowest rate seen (5% steps) to 100%."""
    points = [p for values in series.values() for p in values]
    if not points:
        return "<p>No windows in this period.</p>"
    first, last = min(d for d, _ in points), max(d for d, _ in points)
    span = max(1, (last - first).days)
    low = min(0.95, math.floor((min(v for _, v in points) - 0.005) * 20) / 20)
    left, top, plot_w, plot_h = 50, 10, width - 230, height - 40

    def xy(day: dt.date, value: float) -> tuple[str, str]:
        x = left + plot_w * (day - first).days / span
        return f"{x:.1f}", f"{top + plot_h * (1 - (value - low) / (1 - low or 1)):.1f}"

    parts = [f"<line x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}' stroke='#999'/>",
             f"<text x='{left - 5}' y='{top + 4}' text-anchor='end'>100%</text>",
             f"<text x='{left - 5}' y='{top + plot_h}' text-anchor='end'>{low:.0%}</text>",
             f"<line x1='{left}' y1='{top + plot_h / 2}' x2='{left + plot_w}' y2='{top + plot_h / 2}' stroke='#eee'/>",
             f"<text x='{left - 5}' y='{top + plot_h / 2 + 4}' text-anchor='end'>{(1 + low) / 2:.1%}</text>",
             f"<text x='{left}' y='{height - 8}'>{first}</text>",
             f"<text x='{left + plot_w}' y='{height - 8}' text-anchor='end'>{last}</text>"]
    for n, (stream, values) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' "
                     f"points='{' '.join(','.join(xy(d, v)) for d, v in values)}'/>")
        for day, value in values:
            x, y = xy(day, value)
            parts.append(f"<circle cx='{x}' cy='{y}' r='3' fill='{colour}'>"
                         f"<title>{html.escape(stream)} {day}: {value:.2%}</title></circle>")
        parts.append(f"<rect x='{left + plot_w + 15}' y='{top + 16 * n}' width='10' height='10' fill='{colour}'/>"
                     f"<text x='{left + plot_w + 30}' y='{top + 9 + 16 * n}'>{html.escape(stream)}</text>")
    return _svg(width, max(height, top + 16 * len(series) + 10), parts)


def bar_chart(counts: dict[str, dict[str, int]], width: int = 720) -> str:
    """One horizontal bar per stream, stacked by quarantine status."""
    if not counts:
        return "<p>No quarantined rows in this period.</p>"
    most = max(sum(c.values()) for c in counts.values())
    left, bar_w = 200, width - 200 - 260
    parts = []
    for n, (stream, by_status) in enumerate(sorted(counts.items())):
        x: float = left
        y = 10 + 24 * n
        parts.append(f"<text x='{left - 8}' y='{y + 13}' text-anchor='end'>{html.escape(stream)}</text>")
        for status, count in sorted(by_status.items()):
            w = bar_w * count / most
            parts.append(f"<rect x='{x:.1f}' y='{y}' width='{w:.1f}' height='18' "
                         f"fill='{STATUS_COLOURS.get(status, '#17becf')}'><title>{status}: {count}</title></rect>")
            x += w
        label = ", ".join(f"{s} {c}" for s, c in sorted(by_status.items()))
        parts.append(f"<text x='{x + 6:.1f}' y='{y + 13}'>{html.escape(label)}</text>")
    return _svg(width, 20 + 24 * len(counts), parts)


def _svg(width: int, height: int, parts: list[str]) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"font-family='sans-serif' font-size='12'>{''.join(parts)}</svg>")


def _table(headers: tuple[str, ...], rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wfm-pipelines: data quality</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}} h2{{margin-top:1.5em}}</style></head>
<body>
{body}
</body></html>
"""
