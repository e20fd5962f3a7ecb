#!/usr/bin/env python3
"""Render a terminal capture with SGR colours (`tmux capture-pane -e -p`) to a PNG.

    ansi2png.py CAPTURE.ans OUT.png [--cols 120] [--rows 40] [--size 15]

Understands SGR: reset, bold, dim, italic (ignored), underline, reverse, 8/16 colours (30-37,
90-97, 40-47, 100-107), 256 colours (38;5;N / 48;5;N) and truecolour (38;2;R;G;B, also with
colons), default fg/bg (39/49). Draws box-drawing characters as lines so borders join up
whatever the font's line height; everything else with DejaVu Sans Mono (regular and bold).
Needs Pillow (Debian: python3-pil) and fonts-dejavu-core.
"""

import argparse
import re
import sys
import unicodedata

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
REGULAR = FONT_DIR + "DejaVuSansMono.ttf"
BOLD = FONT_DIR + "DejaVuSansMono-Bold.ttf"

BG = (24, 26, 31)
FG = (210, 214, 220)
# The 16 ANSI colours, a calm dark-theme palette.
PALETTE16 = [
    (40, 42, 48), (224, 92, 92), (120, 200, 110), (220, 190, 90),
    (90, 150, 230), (200, 120, 220), (80, 190, 200), (200, 204, 210),
    (100, 104, 112), (255, 120, 120), (150, 230, 140), (245, 215, 120),
    (130, 180, 255), (225, 150, 240), (120, 220, 230), (245, 246, 248),
]


def color256(n):
    if n < 16:
        return PALETTE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


class Pen:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = False
        self.dim = False
        self.underline = False
        self.reverse = False

    def copy(self):
        p = Pen()
        p.__dict__.update(self.__dict__)
        return p

    def sgr(self, params):
        # Colons (38:2::r:g:b) are split like semicolons; empty fields dropped.
        codes = [int(x) for x in re.split("[;:]", params) if x != ""] or [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 4:
                self.underline = True
            elif c == 24:
                self.underline = False
            elif c == 7:
                self.reverse = True
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = PALETTE16[c - 30]
            elif 90 <= c <= 97:
                self.fg = PALETTE16[c - 90 + 8]
            elif 40 <= c <= 47:
                self.bg = PALETTE16[c - 40]
            elif 100 <= c <= 107:
                self.bg = PALETTE16[c - 100 + 8]
            elif c == 39:
                self.fg = None
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                kind = codes[i + 1]
                if kind == 5 and i + 2 < len(codes):
                    col = color256(codes[i + 2])
                    i += 2
                elif kind == 2 and i + 4 < len(codes):
                    col = tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    col = None
                    i += 1
                if c == 38:
                    self.fg = col
                else:
                    self.bg = col
            i += 1


SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER_ESC = re.compile(r"\x1b(\[[0-9;:?]*[A-Za-ln-z]|\][^\x07]*\x07|[()][A-Z0-9])")


def parse(text, cols, rows):
    """A grid of (char, pen) per row; pens carry across lines as tmux writes them."""
    pen = Pen()
    grid = []
    for line in text.split("\n")[:rows]:
        line = OTHER_ESC.sub("", line)
        row = []
        pos = 0
        for m in SGR.finditer(line):
            for ch in line[pos:m.start()]:
                row.append((ch, pen.copy()))
                if unicodedata.east_asian_width(ch) in ("W", "F"):
                    row.append(("", pen.copy()))
            pen.sgr(m.group(1))
            pos = m.end()
        for ch in line[pos:]:
            row.append((ch, pen.copy()))
            if unicodedata.east_asian_width(ch) in ("W", "F"):
                row.append(("", pen.copy()))
        grid.append(row[:cols])
    while len(grid) < rows:
        grid.append([])
    return grid


# Box drawing: (up, right, down, left) weights; 1 light, 2 double.
BOX = {
    "─": (0, 1, 0, 1), "│": (1, 0, 1, 0), "┌": (0, 1, 1, 0), "┐": (0, 0, 1, 1),
    "└": (1, 1, 0, 0), "┘": (1, 0, 0, 1), "├": (1, 1, 1, 0), "┤": (1, 0, 1, 1),
    "┬": (0, 1, 1, 1), "┴": (1, 1, 0, 1), "┼": (1, 1, 1, 1),
    "╭": (0, 1, 1, 0), "╮": (0, 0, 1, 1), "╰": (1, 1, 0, 0), "╯": (1, 0, 0, 1),
    "═": (0, 2, 0, 2), "║": (2, 0, 2, 0), "╔": (0, 2, 2, 0), "╗": (0, 0, 2, 2),
    "╚": (2, 2, 0, 0), "╝": (2, 0, 0, 2), "╠": (2, 2, 2, 0), "╣": (2, 0, 2, 2),
    "╦": (0, 2, 2, 2), "╩": (2, 2, 0, 2), "╬": (2, 2, 2, 2),
    "╟": (1, 2, 1, 0), "╢": (1, 0, 1, 2), "╤": (0, 2, 1, 2), "╧": (1, 2, 0, 2),
}


def draw_box(d, ch, x, y, cw, chh, color):
    """A box-drawing character as strokes that reach the cell's edges, so borders join."""
    up, right, down, left = BOX[ch]
    cx, cy = x + cw // 2, y + chh // 2
    x1, y1 = x + cw - 1, y + chh - 1
    lw = max(1, round(cw / 9))
    g = max(2, cw // 4)  # half the distance between the strokes of a double line

    def h(xa, xb, yy):
        d.rectangle([min(xa, xb), yy - lw // 2, max(xa, xb), yy - lw // 2 + lw - 1], fill=color)

    def v(ya, yb, xx):
        d.rectangle([xx - lw // 2, min(ya, yb), xx - lw // 2 + lw - 1, max(ya, yb)], fill=color)

    vert = bool(up or down)
    horiz = bool(left or right)
    # Horizontal strokes.
    if 2 in (left, right):
        corner = vert and not (up and down) and not (left and right)
        sign = 1 if down else -1
        for o in (-g, g):
            if left and right:
                h(x, x1, cy + o)
            elif right:
                h(cx + sign * o if corner else cx, x1, cy + o)
            elif left:
                h(x, cx - sign * o if corner else cx, cy + o)
    else:
        if left:
            h(x, cx, cy)
        if right:
            h(cx, x1, cy)
    # Vertical strokes.
    if 2 in (up, down):
        corner = horiz and not (left and right) and not (up and down)
        hs = 1 if right else -1
        for o in (-g, g):
            if up and down:
                v(y, y1, cx + o)
            elif down:
                v(cy + hs * o if corner else cy, y1, cx + o)
            elif up:
                v(y, cy - hs * o if corner else cy, cx + o)
    else:
        if up:
            v(y, cy, cx)
        if down:
            v(cy, y1, cx)


def render(grid, cols, rows, size, out):
    font = ImageFont.truetype(REGULAR, size)
    bold = ImageFont.truetype(BOLD, size)
    cw = round(font.getlength("M"))
    chh = round(size * 1.32)
    pad = 14
    img = Image.new("RGB", (cols * cw + 2 * pad, rows * chh + 2 * pad), BG)
    d = ImageDraw.Draw(img)
    ascent, _ = font.getmetrics()
    base_dy = (chh - size) // 2 - 1
    for r, row in enumerate(grid):
        for c in range(cols):
            ch, pen = row[c] if c < len(row) else (" ", Pen())
            fg = pen.fg or FG
            bg = pen.bg
            if pen.reverse:
                fg, bg = (pen.bg or BG), (pen.fg or FG)
            if pen.dim:
                base = bg or BG
                fg = tuple((a + b) // 2 for a, b in zip(fg, base))
            x, y = pad + c * cw, pad + r * chh
            if bg is not None:
                d.rectangle([x, y, x + cw - 1, y + chh - 1], fill=bg)
            if ch in BOX:
                draw_box(d, ch, x, y, cw, chh, fg)
            elif ch and ch != " ":
                f = bold if pen.bold else font
                d.text((x, y + base_dy), ch, font=f, fill=fg)
            if pen.underline:
                d.line([x, y + chh - 3, x + cw - 1, y + chh - 3], fill=fg)
    img.save(out, optimize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--size", type=int, default=15)
    a = ap.parse_args()
    with open(a.capture, encoding="utf-8", errors="replace") as f:
        text = f.read()
    grid = parse(text, a.cols, a.rows)
    render(grid, a.cols, a.rows, a.size, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
