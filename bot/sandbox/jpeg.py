"""A tiny, real baseline JPEG of a cat face, built from scratch (no Pillow) for /files/cat.jpg.

32x32 pixels, three components (YCbCr, no subsampling, one MCU = one 8x8 block of each),
sequential DCT with Huffman coding (SOF0). To keep the code short it uses one flat quantization
table and simple Huffman tables that give every possible symbol a fixed-length code (4 bits for DC
sizes, 8 bits for AC run/size pairs) instead of the JPEG standard's Annex K tables: still a valid
JFIF file that any decoder reads, just a few hundred bytes larger.
"""

from __future__ import annotations

import math
import struct
from functools import cache

WIDTH = HEIGHT = 32
QUANT = 4  # every coefficient is divided by this (flat table: good quality, tiny image anyway)

# zigzag position -> natural (row-major) index of the 8x8 block (ITU T.81 figure 5)
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)

DC_SYMBOLS = list(range(12))  # magnitude categories 0..11
AC_SYMBOLS = [0x00, 0xF0] + [run << 4 | size for run in range(16) for size in range(1, 11)]  # EOB, ZRL, pairs
DC_BITS = 4  # 12 codes of 4 bits: 0000..1011 (never the reserved all-ones code)
AC_BITS = 8  # 162 codes of 8 bits: 0..161


def cat_pixels() -> list[list[tuple[int, int, int]]]:
    """RGB rows: an orange cat head with ears, green eyes and a pink nose on sky blue."""
    sky, fur, eye, pupil, nose = (135, 206, 235), (240, 150, 50), (60, 180, 75), (20, 20, 20), (250, 120, 160)

    def inside(px: float, py: float, tri: tuple[tuple[float, float], ...]) -> bool:
        (ax, ay), (bx, by), (cx, cy) = tri
        d1 = (px - bx) * (ay - by) - (ax - bx) * (py - by)
        d2 = (px - cx) * (by - cy) - (bx - cx) * (py - cy)
        d3 = (px - ax) * (cy - ay) - (cx - ax) * (py - ay)
        return not ((d1 < 0 or d2 < 0 or d3 < 0) and (d1 > 0 or d2 > 0 or d3 > 0))

    rows = []
    for y in range(HEIGHT):
        row = []
        for x in range(WIDTH):
            px, py = x + 0.5, y + 0.5
            color = sky
            if inside(px, py, ((4, 14), (7, 2), (15, 9))) or inside(px, py, ((28, 14), (25, 2), (17, 9))):
                color = fur
            if (px - 16) ** 2 + (py - 18) ** 2 <= 11.5**2:
                color = fur
            for ex in (11.5, 20.5):
                if (px - ex) ** 2 + (py - 16) ** 2 <= 2.6**2:
                    color = pupil if abs(px - ex) < 0.8 else eye
            if inside(px, py, ((14, 20.5), (18, 20.5), (16, 23))):
                color = nose
            row.append(color)
        rows.append(row)
    return rows


def _ycbcr(r: int, g: int, b: int) -> tuple[float, float, float]:
    """JFIF colour conversion, level-shifted by -128 for the DCT."""
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return y - 128, cb - 128, cr - 128


_COS = [[math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)] for u in range(8)]
_C = [1 / math.sqrt(2)] + [1.0] * 7


def _fdct(block: list[float]) -> list[int]:
    """Forward DCT of 64 samples (row-major), quantized; result in natural order."""
    out = []
    for v in range(8):
        for u in range(8):
            total = sum(block[y * 8 + x] * _COS[u][x] * _COS[v][y] for y in range(8) for x in range(8))
            out.append(round(0.25 * _C[u] * _C[v] * total / QUANT))
    return out


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, nbits: int, value: int) -> None:
        for i in range(nbits - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0x00)  # byte stuffing
                self.acc = self.count = 0

    def flush(self) -> bytes:
        if self.count:
            self.write(8 - self.count, (1 << (8 - self.count)) - 1)  # pad with 1 bits
        return bytes(self.out)


def _magnitude(value: int) -> tuple[int, int]:
    """(category, extra bits) of a DC difference or AC coefficient (T.81 F.1.2.1)."""
    size = abs(value).bit_length()
    return size, value if value >= 0 else value + (1 << size) - 1


def _encode_block(bits: _BitWriter, coeffs: list[int], previous_dc: int) -> int:
    dc_size, dc_extra = _magnitude(coeffs[0] - previous_dc)
    bits.write(DC_BITS, DC_SYMBOLS.index(dc_size))
    bits.write(dc_size, dc_extra)
    run = 0
    for k in range(1, 64):
        value = coeffs[ZIGZAG[k]]
        if value == 0:
            run += 1
            continue
        while run > 15:
            bits.write(AC_BITS, AC_SYMBOLS.index(0xF0))
            run -= 16
        size, extra = _magnitude(value)
        bits.write(AC_BITS, AC_SYMBOLS.index(run << 4 | size))
        bits.write(size, extra)
        run = 0
    if run:
        bits.write(AC_BITS, AC_SYMBOLS.index(0x00))
    return coeffs[0]


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def _dht(table_class: int, table_id: int, code_bits: int, symbols: list[int]) -> bytes:
    counts = [0] * 16
    counts[code_bits - 1] = len(symbols)
    return bytes([table_class << 4 | table_id, *counts, *symbols])


@cache
def build_cat_jpeg() -> bytes:
    """Return the bytes of the 32x32 cat (a few KB); computed once per process."""
    pixels = cat_pixels()
    planes = [[[0.0] * WIDTH for _ in range(HEIGHT)] for _ in range(3)]
    for y, row in enumerate(pixels):
        for x, rgb in enumerate(row):
            for c, value in enumerate(_ycbcr(*rgb)):
                planes[c][y][x] = value
    bits = _BitWriter()
    previous = [0, 0, 0]
    for by in range(0, HEIGHT, 8):
        for bx in range(0, WIDTH, 8):
            for c in range(3):
                block = [planes[c][by + y][bx + x] for y in range(8) for x in range(8)]
                previous[c] = _encode_block(bits, _fdct(block), previous[c])
    components = range(1, 4)  # Y, Cb, Cr; all 1x1 sampling, quantization table 0, Huffman tables 0
    frame = struct.pack(">BHHB", 8, HEIGHT, WIDTH, 3) + b"".join(bytes([c, 0x11, 0]) for c in components)
    return b"".join([
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\x00" + struct.pack(">BBBHHBB", 1, 1, 0, 1, 1, 0, 0)),
        _segment(0xDB, bytes([0]) + bytes([QUANT] * 64)),
        _segment(0xC0, frame),
        _segment(0xC4, _dht(0, 0, DC_BITS, DC_SYMBOLS) + _dht(1, 0, AC_BITS, AC_SYMBOLS)),
        _segment(0xDA, bytes([3]) + b"".join(bytes([c, 0x00]) for c in components) + bytes([0, 63, 0])),
        bits.flush(),
        b"\xff\xd9",
    ])
