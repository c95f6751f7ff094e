"""The A/B report's chart as a PNG, with the standard library only (zlib, struct): no plotting dependency.

One panel per metric, as the terminal chart (keel.report.chart): per group a bar from zero to the estimate
and the interval drawn as a whisker across it, the figures and n written beside it, and the verdict of each
comparison below. Text is a 5x7 pixel font (keel.report.font5x7) drawn at twice its size: plain, but it
reads without any font installed. The baseline's bar is grey, the others blue; a verdict is green (better),
red (worse), amber (no difference detected) or grey (not enough data).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from keel.report.ab import METRICS, ABReport
from keel.report.chart import format_difference, format_value, scale
from keel.report.font5x7 import glyph

__all__ = ["ab_png", "write_ab_png", "BAR", "BASE", "BAR_W"]

Colour = tuple[int, int, int]
WHITE: Colour = (255, 255, 255)
INK: Colour = (34, 34, 34)
GRID: Colour = (210, 210, 210)
BASE: Colour = (150, 150, 150)
BAR: Colour = (66, 133, 244)
WHISKER: Colour = (20, 20, 20)
VERDICT: dict[str, Colour] = {
    "better": (30, 140, 60),
    "worse": (200, 40, 40),
    "no difference detected": (190, 130, 0),
    "not enough data": (130, 130, 130),
}
SCALE = 2  # each font pixel is 2x2
CHAR_W, LINE_H = 6 * SCALE, 10 * SCALE
PAD = 16
ROW_H = 26
BAR_W = 360


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(bytes(WHITE) * width) for _ in range(height)]

    def rect(self, x: int, y: int, w: int, h: int, colour: Colour) -> None:
        x0, x1 = max(0, x), min(self.width, x + w)
        if x1 <= x0:
            return
        span = bytes(colour) * (x1 - x0)
        for row in self.rows[max(0, y) : min(self.height, y + h)]:
            row[3 * x0 : 3 * x1] = span

    def text(self, x: int, y: int, text: str, colour: Colour = INK) -> None:
        for i, ch in enumerate(text):
            for col, bits in enumerate(glyph(ch)):
                for bit in range(7):
                    if bits >> bit & 1:
                        self.rect(x + i * CHAR_W + col * SCALE, y + bit * SCALE, SCALE, SCALE, colour)

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)  # filter 0 (none) on every scanline

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _layout(report: ABReport) -> tuple[int, int, int]:
    """(bar x, width, height) for the report's groups and comparisons."""
    names = max((len(g.name) for g in report.groups), default=4)
    bar_x = PAD + (names + 2) * CHAR_W
    figures = 40  # "123.45 s [100.00 s, 150.00 s] n=123456"
    lines = [
        f"{c.group} vs {c.baseline}: no difference detected (+0.0000 USD [+0.0000, +0.0000])"
        for c in report.comparisons
    ]
    width = max(
        bar_x + BAR_W + PAD + figures * CHAR_W, PAD * 2 + max((len(s) for s in lines), default=0) * CHAR_W
    )
    panel = LINE_H + 6 + len(report.groups) * ROW_H + len(report.comparisons) * LINE_H + PAD
    verdict = _wrap(report.verdict, (width - 2 * PAD) // CHAR_W)
    height = PAD + 2 * LINE_H + len(METRICS) * panel + len(verdict) * LINE_H + PAD
    return bar_x, width, height


def ab_png(report: ABReport) -> bytes:
    """The report's chart as PNG bytes."""
    bar_x, width, height = _layout(report)
    c = _Canvas(width, height)
    y = PAD
    c.text(PAD, y, f"A/B report {report.since:%Y-%m-%d %H:%M} .. {report.until:%Y-%m-%d %H:%M} UTC")
    y += 2 * LINE_H
    for m in METRICS:
        better = "higher" if m.higher_is_better else "lower"
        c.text(PAD, y, f"{m.label} ({report.confidence:.0%}, {better} is better)")
        y += LINE_H + 6
        lo, hi = scale(report, m)

        def x_of(v: float, lo: float = lo, hi: float = hi) -> int:
            return bar_x + round((min(max(v, lo), hi) - lo) / (hi - lo) * BAR_W)

        if lo < 0:  # the feedback score: a faint line at zero across the groups
            c.rect(x_of(0.0), y - 2, 1, len(report.groups) * ROW_H, GRID)
        for g in report.groups:
            f = report.figures[g.name][m.name]
            c.text(PAD, y + 4, g.name, INK)
            c.rect(bar_x, y, BAR_W, 1, GRID)
            c.rect(bar_x, y + ROW_H - 4, BAR_W, 1, GRID)
            if f.interval is None:
                c.text(bar_x + BAR_W + PAD, y + 4, f"no data  n={f.n}", BASE)
            else:
                i = f.interval
                zero, est = x_of(0.0), x_of(i.estimate)
                c.rect(
                    min(zero, est),
                    y + 5,
                    max(abs(est - zero), 1),
                    ROW_H - 14,
                    BASE if g.name == report.baseline else BAR,
                )
                low, high, mid = x_of(i.low), x_of(i.high), y + ROW_H // 2 - 2
                c.rect(low, mid - 1, max(high - low, 1), 2, WHISKER)
                c.rect(low, mid - 6, 2, 12, WHISKER)
                c.rect(high - 1, mid - 6, 2, 12, WHISKER)
                ends = f"[{format_value(m, i.low)}, {format_value(m, i.high)}]"
                figure = f"{format_value(m, i.estimate)} {ends} n={f.n}"
                c.text(bar_x + BAR_W + PAD, y + 4, figure)
            y += ROW_H
        for cmp in report.comparisons:
            v, d = cmp.verdicts[m.name], cmp.differences[m.name]
            detail = f" ({format_difference(m, d)})" if d is not None else ""
            c.text(PAD, y + 2, f"{cmp.group} vs {cmp.baseline}: {v}{detail}", VERDICT[v])
            y += LINE_H
        y += PAD
    for k, line in enumerate(_wrap(report.verdict, (width - 2 * PAD) // CHAR_W)):
        c.text(PAD, y + k * LINE_H, line)
    return c.png()


def _wrap(text: str, columns: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > columns:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def write_ab_png(report: ABReport, path: Path) -> None:
    """Write the chart to `path` (its folder must exist)."""
    path.write_bytes(ab_png(report))
