"""Server-rendered SVG charts for the reports: no script, no inline styles (the console's CSP
allows neither), so bars take their colours from classes in ``console.css``. Every chart carries
a ``<title>`` and ``<desc>`` for screen readers, and every bar a ``<title>`` with its exact value
(the browser shows it on hover); the page shows the same numbers in tables beside the charts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

Format = Callable[[float], str]


def plain_number(value: float) -> str:
    return f"{value:g}" if not float(value).is_integer() else str(int(value))


def duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``3.2 h``, ``2 d``: short enough for a bar label."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    value, unit = (
        (seconds / 60, "min")
        if seconds < 3600
        else (seconds / 3600, "h")
        if seconds < 86400
        else (seconds / 86400, "d")
    )
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _frame(title: str, desc: str, width: int, height: int, body: list[str], kind: str) -> Markup:
    ident = "chart-" + hashlib.sha1(title.encode()).hexdigest()[:8]
    return Markup(
        f'<svg class="chart chart--{kind}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, float]],
    *,
    fmt: Format = plain_number,
    width: int = 520,
    label_width: int = 150,
    empty: str = "—",
    tone: int | None = None,
) -> Markup:
    """Horizontal bars, one per ``(label, value)``, longest = the largest value; each bar in its
    own colour, or all in colour ``tone``."""
    bar_h, gap, top = 20, 6, 4
    height = max(1, len(rows)) * (bar_h + gap) + top
    biggest = max((value for _, value in rows), default=0) or 1
    room = width - label_width - 70
    body: list[str] = []
    if not rows:
        body.append(f'<text class="chart__empty" x="{label_width}" y="{top + 14}">{escape(empty)}</text>')
    for n, (label, value) in enumerate(rows):
        y = top + n * (bar_h + gap)
        length = max(0.0, value) / biggest * room
        text = fmt(value)
        body.append(
            f'<g class="chart__row"><text class="chart__label" x="{label_width - 8}" y="{y + 14}" text-anchor="end">'
            f'{escape(label)}</text><rect class="bar bar--{n % 6 if tone is None else tone}" x="{label_width}" y="{y}" width="{length:.1f}" '
            f'height="{bar_h}" rx="3"><title>{escape(label)}: {escape(text)}</title></rect>'
            f'<text class="chart__value" x="{label_width + length + 6:.1f}" y="{y + 14}">{escape(text)}</text></g>'
        )
    desc = "; ".join(f"{label}: {fmt(value)}" for label, value in rows) or empty
    return _frame(title, desc, width, height, body, "bars")


def column_chart(
    title: str,
    columns: Sequence[tuple[str, float]],
    *,
    fmt: Format = plain_number,
    width: int = 520,
    height: int = 180,
    tick_every: int = 7,
) -> Markup:
    """Vertical columns over time (one per day); every ``tick_every``-th column is labelled."""
    top, bottom, left = 16, 22, 30
    biggest = max((value for _, value in columns), default=0) or 1
    slot = (width - left) / max(1, len(columns))
    room = height - top - bottom
    body = [
        f'<line class="chart__axis" x1="{left}" y1="{top + room}" x2="{width}" y2="{top + room}"/>',
        f'<text class="chart__tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{escape(fmt(biggest))}</text>',
        f'<text class="chart__tick" x="{left - 4}" y="{top + room}" text-anchor="end">0</text>',
    ]
    for n, (label, value) in enumerate(columns):
        tall = max(0.0, value) / biggest * room
        x = left + n * slot + slot * 0.15
        body.append(
            f'<rect class="bar bar--0" x="{x:.1f}" y="{top + room - tall:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{tall:.1f}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
        )
        if n % tick_every == 0:
            body.append(f'<text class="chart__tick" x="{x:.1f}" y="{height - 6}">{escape(label)}</text>')
    desc = "; ".join(f"{label}: {fmt(value)}" for label, value in columns if value) or "—"
    return _frame(title, desc, width, height, body, "columns")


def paired_bars(
    title: str,
    rows: Sequence[tuple[str, float | None, float | None]],
    legend: tuple[str, str],
    *,
    fmt: Format = duration,
    width: int = 520,
    label_width: int = 150,
) -> Markup:
    """Two bars per row (median and p90 of a duration), on one scale; missing values are skipped."""
    bar_h, gap, top = 14, 12, 22
    height = top + max(1, len(rows)) * (2 * bar_h + gap)
    biggest = max((v for _, *pair in rows for v in pair if v is not None), default=0) or 1
    room = width - label_width - 70
    body = [
        f'<rect class="bar bar--0" x="{label_width}" y="4" width="10" height="10"/>'
        f'<text class="chart__tick" x="{label_width + 14}" y="13">{escape(legend[0])}</text>'
        f'<rect class="bar bar--1" x="{label_width + 90}" y="4" width="10" height="10"/>'
        f'<text class="chart__tick" x="{label_width + 104}" y="13">{escape(legend[1])}</text>'
    ]
    lines = []
    for n, (label, *pair) in enumerate(rows):
        y = top + n * (2 * bar_h + gap)
        body.append(
            f'<text class="chart__label" x="{label_width - 8}" y="{y + bar_h + 4}" text-anchor="end">{escape(label)}</text>'
        )
        for k, value in enumerate(pair):
            if value is None:
                continue
            length = value / biggest * room
            yy = y + k * bar_h
            body.append(
                f'<rect class="bar bar--{k}" x="{label_width}" y="{yy}" width="{length:.1f}" height="{bar_h - 2}" rx="2">'
                f"<title>{escape(label)} {escape(legend[k])}: {escape(fmt(value))}</title></rect>"
                f'<text class="chart__value" x="{label_width + length + 6:.1f}" y="{yy + bar_h - 3}">{escape(fmt(value))}</text>'
            )
            lines.append(f"{label} {legend[k]}: {fmt(value)}")
    return _frame(title, "; ".join(lines) or "—", width, height, body, "pairs")


def share_bar(title: str, parts: Sequence[tuple[str, float]], *, width: int = 520) -> Markup:
    """One 100 % bar split into ``parts`` (e.g. contained vs escalated), with a legend."""
    total = sum(value for _, value in parts) or 1
    body, x = [], 0.0
    for n, (label, value) in enumerate(parts):
        w = value / total * width
        share = f"{value / total:.0%}" if sum(v for _, v in parts) else "—"
        body.append(
            f'<rect class="bar bar--{n}" x="{x:.1f}" y="0" width="{w:.1f}" height="22">'
            f"<title>{escape(label)}: {plain_number(value)} ({share})</title></rect>"
        )
        body.append(
            f'<rect class="bar bar--{n}" x="{n * 170}" y="32" width="10" height="10"/>'
            f'<text class="chart__tick" x="{n * 170 + 14}" y="41">{escape(label)}: {plain_number(value)} ({share})</text>'
        )
        x += w
    desc = "; ".join(f"{label}: {plain_number(value)}" for label, value in parts)
    return _frame(title, desc, width, 48, body, "share")
