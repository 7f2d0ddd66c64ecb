"""The generated sample video is a well-formed H.264 MP4 and matches the shipped file."""

from __future__ import annotations

import struct

from bot.sandbox import mp4


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    out, pos, end = [], start, len(data) if end is None else end
    while pos < end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        assert size >= 8 and pos + size <= end, f"box {kind!r} overruns its parent"
        out.append((kind, pos, size))
        pos += size
    assert pos == end
    return out


def child(data: bytes, parent: tuple[bytes, int, int], kind: bytes, skip: int = 0) -> tuple[bytes, int, int]:
    _, pos, size = parent
    return next(b for b in boxes(data, pos + 8 + skip, pos + size) if b[0] == kind)


def test_shipped_file_is_what_the_generator_makes():
    assert (mp4.STATIC_DIR / "sample.mp4").read_bytes() == mp4.build_sample_mp4()


def test_box_structure_and_sample_table_point_into_mdat():
    data = mp4.build_sample_mp4()
    top = boxes(data)
    assert [b[0] for b in top] == [b"ftyp", b"moov", b"mdat"]
    moov = top[1]
    trak = child(data, moov, b"trak")
    stbl = child(data, child(data, child(data, trak, b"mdia"), b"minf"), b"stbl")
    _, pos, _ = child(data, stbl, b"stsz")
    _, count = struct.unpack(">II", data[pos + 12 : pos + 20])
    sizes = struct.unpack(f">{count}I", data[pos + 20 : pos + 20 + 4 * count])
    _, pos, _ = child(data, stbl, b"stco")
    (offset,) = struct.unpack(">I", data[pos + 16 : pos + 20])
    mdat = top[2]
    assert count == mp4.FRAMES and offset == mdat[1] + 8 and sum(sizes) == mdat[2] - 8
    # every sample is one length-prefixed IDR NAL unit
    pos = offset
    for size in sizes:
        (nal_len,) = struct.unpack(">I", data[pos : pos + 4])
        assert nal_len == size - 4 and data[pos + 4] == 0x65
        pos += size
    avc1 = child(data, child(data, stbl, b"stsd"), b"avc1", skip=8)  # after version/flags + entry count
    avcc = child(data, avc1, b"avcC", skip=78)  # after the VisualSampleEntry fields
    assert data[avcc[1] + 8 : avcc[1] + 12] == bytes(
        [1, 66, 0xC0, 10]
    )  # version, baseline profile, level 1.0


def test_exp_golomb_writer():
    bits = mp4._Bits()
    for value in (0, 1, 2, 3, 25):
        bits.ue(value)
    assert "".join(map(str, bits.bits)) == "1" + "010" + "011" + "00100" + "000011010"
