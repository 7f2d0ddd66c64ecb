"""The generated cat is a well-formed baseline JPEG: a small independent decoder (ITU T.81, baseline,
1x1 sampling) reads it back and gets the drawn picture."""

from __future__ import annotations

import math
import struct

import pytest

from bot.sandbox import jpeg


def zigzag_order() -> list[int]:
    """Natural index of each zigzag position, walked along the anti-diagonals (not copied from jpeg.py)."""
    order = []
    for s in range(15):
        cells = [(row, s - row) for row in range(8) if 0 <= s - row < 8]
        order += [row * 8 + col for row, col in (reversed(cells) if s % 2 == 0 else cells)]
    return order


def huffman_table(counts: bytes, symbols: bytes) -> dict[tuple[int, int], int]:
    """Canonical codes from BITS/HUFFVAL (T.81 annex C) -> {(length, code): symbol}."""
    table, code, k = {}, 0, 0
    for length, n in enumerate(counts, start=1):
        for _ in range(n):
            assert code != (1 << length) - 1, "the all-ones code is reserved"
            table[(length, code)] = symbols[k]
            code, k = code + 1, k + 1
        assert code <= (1 << length), f"too many codes of length {length}"
        code <<= 1
    assert k == len(symbols)
    return table


class Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.bit = data, 0, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            if self.pos >= len(self.data):
                raise AssertionError("entropy-coded data ran out")
            value = value << 1 | (self.data[self.pos] >> (7 - self.bit)) & 1
            self.bit += 1
            if self.bit == 8:
                self.bit, self.pos = 0, self.pos + 1
        return value

    def symbol(self, table: dict[tuple[int, int], int]) -> int:
        code = 0
        for length in range(1, 17):
            code = code << 1 | self.read(1)
            if (length, code) in table:
                return table[(length, code)]
        raise AssertionError("no Huffman code matches")


def extend(value: int, size: int) -> int:
    return value - (1 << size) + 1 if size and value < 1 << (size - 1) else value


def decode(data: bytes) -> list[list[tuple[int, int, int]]]:
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    pos, quant, huff, frame, seen = 2, {}, {}, None, []
    while True:
        assert data[pos] == 0xFF, f"no marker at {pos}"
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        pos += 2 + length
        seen.append(marker)
        if marker == 0xE0:
            assert body[:5] == b"JFIF\x00"
        elif marker == 0xDB:
            while body:
                assert body[0] >> 4 == 0, "8-bit tables"
                quant[body[0] & 15] = list(body[1:65])
                body = body[65:]
        elif marker == 0xC4:
            while body:
                n = sum(body[1:17])
                huff[(body[0] >> 4, body[0] & 15)] = huffman_table(body[1:17], body[17 : 17 + n])
                body = body[17 + n :]
        elif marker == 0xC0:
            precision, height, width, ncomp = struct.unpack(">BHHB", body[:6])
            comps = [tuple(body[6 + 3 * i : 9 + 3 * i]) for i in range(ncomp)]
            assert precision == 8 and all(c[1] == 0x11 for c in comps), "this decoder: 1x1 sampling only"
            frame = (width, height, comps)
        elif marker == 0xDA:
            break
        else:
            raise AssertionError(f"unexpected marker {marker:#x}")
    assert seen[0] == 0xE0 and frame is not None
    width, height, comps = frame
    ncomp = body[0]
    tables = {body[1 + 2 * i]: (body[2 + 2 * i] >> 4, body[2 + 2 * i] & 15) for i in range(ncomp)}
    assert body[1 + 2 * ncomp :] == bytes([0, 63, 0]), "baseline: full spectrum, no approximation"
    scan = data[pos:-2]
    assert all(scan[i + 1] == 0 for i in range(len(scan) - 1) if scan[i] == 0xFF), "unstuffed 0xFF in scan"
    bits = Bits(scan.replace(b"\xff\x00", b"\xff"))
    zz = zigzag_order()
    planes = [[[0.0] * width for _ in range(height)] for _ in comps]
    dc = [0] * len(comps)
    c0 = [1 / math.sqrt(2)] + [1.0] * 7
    cos = [[math.cos((2 * x + 1) * u * math.pi / 16) for x in range(8)] for u in range(8)]
    for by in range(0, height, 8):
        for bx in range(0, width, 8):
            for ci, (cid, _sampling, tq) in enumerate(comps):
                dc_table, ac_table = huff[(0, tables[cid][0])], huff[(1, tables[cid][1])]
                coeffs = [0] * 64
                size = bits.symbol(dc_table)
                dc[ci] += extend(bits.read(size), size)
                coeffs[0] = dc[ci]
                k = 1
                while k < 64:
                    rs = bits.symbol(ac_table)
                    run, size = rs >> 4, rs & 15
                    if size == 0:
                        if run == 15:
                            k += 16
                            continue
                        break  # EOB
                    k += run
                    coeffs[zz[k]] = extend(bits.read(size), size)
                    k += 1
                q = quant[tq]  # stored in zigzag order, like the coefficients
                natural = [0] * 64
                for i in range(64):
                    natural[zz[i]] = coeffs[zz[i]] * q[i]
                for y in range(8):
                    for x in range(8):
                        total = sum(
                            c0[u] * c0[v] * natural[v * 8 + u] * cos[u][x] * cos[v][y]
                            for v in range(8) for u in range(8)
                        )
                        planes[ci][by + y][bx + x] = total / 4 + 128
    assert bits.pos >= len(bits.data) - 1, "data left after the last block"

    def clamp(value: float) -> int:
        return max(0, min(255, round(value)))

    def rgb(luma: float, cb: float, cr: float) -> tuple[int, int, int]:
        cb, cr = cb - 128, cr - 128
        return clamp(luma + 1.402 * cr), clamp(luma - 0.344136 * cb - 0.714136 * cr), clamp(luma + 1.772 * cb)

    return [[rgb(*(plane[y][x] for plane in planes)) for x in range(width)] for y in range(height)]


@pytest.fixture(scope="module")
def decoded() -> list[list[tuple[int, int, int]]]:
    return decode(jpeg.build_cat_jpeg())


def test_decodes_to_the_drawn_cat(decoded):
    source = jpeg.cat_pixels()
    assert len(decoded) == jpeg.HEIGHT and all(len(row) == jpeg.WIDTH for row in decoded)
    errors = [abs(a - b) for drow, srow in zip(decoded, source, strict=True)
              for dpx, spx in zip(drow, srow, strict=True) for a, b in zip(dpx, spx, strict=True)]
    assert sum(errors) / len(errors) < 4, "lossy, but close to the source on average"
    assert max(errors) < 80
    sky, fur = decoded[0][0], decoded[26][16]
    assert sky[2] > 200 and sky[0] < 160, sky  # blue corner
    assert fur[0] > 200 and 100 < fur[1] < 190 and fur[2] < 100, fur  # orange head


def test_zigzag_table_and_size():
    assert list(jpeg.ZIGZAG) == zigzag_order()
    data = jpeg.build_cat_jpeg()
    assert 500 < len(data) < 20_000


def test_decoder_rejects_a_corrupted_file():
    data = bytearray(jpeg.build_cat_jpeg())
    sos = data.index(b"\xff\xda")
    with pytest.raises(AssertionError):
        decode(bytes(data[: sos + 30]) + b"\xff\xd9")  # scan cut short
