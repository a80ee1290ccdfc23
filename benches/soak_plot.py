#!/usr/bin/env python3
"""Plots a soak's memory curve and throughput (PNG, standard library only).

    python3 benches/soak_plot.py SOAK_OUT_DIR OUT.png

reads SOAK_OUT_DIR/{heap,mapped}/samples.csv (written by the soak test with
SOAK_OUT set; either may be missing) and draws three panels against time:
the process's resident set size, the bytes of live regions (and the metrics'
memory gauge, dashed), and transactions per second between samples.
"""
import csv
import os
import struct
import sys
import zlib

W, H = 960, 820
MARGIN_L, MARGIN_R, MARGIN_T = 90, 20, 50
PANEL_H, PANEL_GAP = 190, 40
COLORS = {"heap": (31, 119, 180), "mapped": (230, 120, 20)}
GREY, BLACK, WHITE = (200, 200, 200), (0, 0, 0), (255, 255, 255)

# A 5x7 bitmap font: each glyph is 7 rows of 5 bits.
FONT = {
    " ": [0, 0, 0, 0, 0, 0, 0],
    "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14],
    "2": [14, 17, 1, 2, 4, 8, 31], "3": [31, 2, 4, 2, 1, 17, 14],
    "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
    "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8],
    "8": [14, 17, 17, 14, 17, 17, 14], "9": [14, 17, 17, 15, 1, 2, 12],
    ".": [0, 0, 0, 0, 0, 12, 12], "-": [0, 0, 0, 31, 0, 0, 0],
    "/": [1, 1, 2, 4, 8, 16, 16], "(": [2, 4, 8, 8, 8, 4, 2],
    ")": [8, 4, 2, 2, 2, 4, 8], ":": [0, 12, 12, 0, 12, 12, 0],
    ",": [0, 0, 0, 0, 12, 4, 8], "%": [24, 25, 2, 4, 8, 19, 3],
    "=": [0, 0, 31, 0, 31, 0, 0], "+": [0, 4, 4, 31, 4, 4, 0],
    "A": [14, 17, 17, 31, 17, 17, 17], "B": [30, 17, 17, 30, 17, 17, 30],
    "C": [14, 17, 16, 16, 16, 17, 14], "D": [28, 18, 17, 17, 17, 18, 28],
    "E": [31, 16, 16, 30, 16, 16, 31], "F": [31, 16, 16, 30, 16, 16, 16],
    "G": [14, 17, 16, 23, 17, 17, 15], "H": [17, 17, 17, 31, 17, 17, 17],
    "I": [14, 4, 4, 4, 4, 4, 14], "J": [7, 2, 2, 2, 2, 18, 12],
    "K": [17, 18, 20, 24, 20, 18, 17], "L": [16, 16, 16, 16, 16, 16, 31],
    "M": [17, 27, 21, 21, 17, 17, 17], "N": [17, 17, 25, 21, 19, 17, 17],
    "O": [14, 17, 17, 17, 17, 17, 14], "P": [30, 17, 17, 30, 16, 16, 16],
    "Q": [14, 17, 17, 17, 21, 18, 13], "R": [30, 17, 17, 30, 20, 18, 17],
    "S": [15, 16, 16, 14, 1, 1, 30], "T": [31, 4, 4, 4, 4, 4, 4],
    "U": [17, 17, 17, 17, 17, 17, 14], "V": [17, 17, 17, 17, 17, 10, 4],
    "W": [17, 17, 17, 21, 21, 21, 10], "X": [17, 17, 10, 4, 10, 17, 17],
    "Y": [17, 17, 17, 10, 4, 4, 4], "Z": [31, 1, 2, 4, 8, 16, 31],
}


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(WHITE * (w * h))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = 3 * (y * self.w + x)
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0, y0, x1, y1, c):
        for y in range(max(0, y0), min(self.h, y1)):
            for x in range(max(0, x0), min(self.w, x1)):
                self.set(x, y, c)

    def line(self, x0, y0, x1, y1, c, width=2, dash=0):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            if dash and (i // dash) % 2:
                continue
            x = round(x0 + (x1 - x0) * i / steps)
            y = round(y0 + (y1 - y0) * i / steps)
            for dx in range(width):
                for dy in range(width):
                    self.set(x + dx, y + dy, c)

    def text(self, x, y, s, c=BLACK, scale=2):
        for ch in s.upper():
            rows = FONT.get(ch, FONT[" "])
            for r, bits in enumerate(rows):
                for col in range(5):
                    if bits & (1 << (4 - col)):
                        self.rect(x + col * scale, y + r * scale,
                                  x + (col + 1) * scale, y + (r + 1) * scale, c)
            x += 6 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w:3 * (y + 1) * self.w])
                       for y in range(self.h))

        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)))
            f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
            f.write(chunk(b"IEND", b""))


def load(directory, name):
    path = os.path.join(directory, name, "samples.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [{k: float(v) for k, v in r.items()} for r in rows]


def fmt(v):
    if v >= 100 or v == int(v):
        return f"{v:.0f}"
    return f"{v:.1f}"


def panel(cv, top, title, series, t_max, unit_x):
    """series: list of (name, [(t, y)], dashed)."""
    x0, x1 = MARGIN_L, W - MARGIN_R
    y0, y1 = top, top + PANEL_H
    ys = [y for _, pts, _ in series for _, y in pts]
    y_max = max(ys) * 1.1 if ys and max(ys) > 0 else 1.0
    cv.text(x0, top - 22, title)
    cv.rect(x0, y1, x1, y1 + 2, BLACK)
    cv.rect(x0, y0, x0 + 2, y1, BLACK)
    for k in range(5):
        y = y1 - round(PANEL_H * k / 4)
        cv.rect(x0 + 2, y, x1, y + 1, GREY)
        label = fmt(y_max * k / 4)
        cv.text(x0 - 8 - 12 * len(label), y - 7, label)
    for k in range(5):
        x = x0 + round((x1 - x0) * k / 4)
        label = fmt(t_max * k / 4 / unit_x)
        cv.text(x - 6 * len(label), y1 + 8, label)
    for name, pts, dashed in series:
        c = COLORS[name]
        prev = None
        for t, y in pts:
            p = (x0 + round((x1 - x0) * t / t_max), y1 - round(PANEL_H * y / y_max))
            if prev:
                cv.line(prev[0], prev[1], p[0], p[1], c, width=2, dash=6 if dashed else 0)
            prev = p


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: soak_plot.py SOAK_OUT_DIR OUT.png")
    directory, out = sys.argv[1], sys.argv[2]
    runs = {n: load(directory, n) for n in ("heap", "mapped")}
    runs = {n: r for n, r in runs.items() if r}
    if not runs:
        sys.exit(f"soak_plot.py: no samples.csv under {directory}/heap or {directory}/mapped")
    t_max = max(r[-1]["seconds"] for r in runs.values()) or 1.0
    unit, unit_x = ("MIN", 60.0) if t_max > 300 else ("S", 1.0)
    cv = Canvas(W, H)
    cv.text(MARGIN_L, 12, f"SOAK: MEMORY AND THROUGHPUT OVER TIME ({unit})", scale=2)
    x = W - MARGIN_R - 260
    for name in runs:
        cv.rect(x, 14, x + 20, 26, COLORS[name])
        cv.text(x + 26, 13, name)
        x += 130
    top = MARGIN_T + 30
    panel(cv, top, "RESIDENT SET SIZE (MIB)",
          [(n, [(s["seconds"], s["rss_bytes"] / 2**20) for s in r], False) for n, r in runs.items()],
          t_max, unit_x)
    top += PANEL_H + PANEL_GAP + 20
    region = []
    for n, r in runs.items():
        region.append((n, [(s["seconds"], s["region_bytes"] / 1024) for s in r], False))
        region.append((n, [(s["seconds"], s["gauge_bytes"] / 1024) for s in r], True))
    panel(cv, top, "LIVE REGION KIB (DASHED: THE METRICS GAUGE)", region, t_max, unit_x)
    top += PANEL_H + PANEL_GAP + 20
    # Rates over windows of at least a hundredth of the run (and a second).
    window = max(1.0, t_max / 100)
    rate = []
    for n, r in runs.items():
        pts, a = [], r[0]
        for b in r[1:]:
            dt = b["seconds"] - a["seconds"]
            if dt >= window or b is r[-1] and dt > 0:
                pts.append((b["seconds"], (b["transactions"] - a["transactions"]) / dt))
                a = b
        rate.append((n, pts, False))
    panel(cv, top, "TRANSACTIONS PER SECOND (ONE PROCESS)", rate, t_max, unit_x)
    cv.png(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
