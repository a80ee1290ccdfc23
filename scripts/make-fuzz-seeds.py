#!/usr/bin/env python3
"""Writes the hand-made seed and reproducer inputs of the binary-format fuzz targets
(region-file headers, region files with undo logs, snapshots), from the formats in
crates/mapped (docs/ipc.md). Run from the repository root; it rewrites the files it
owns and leaves every other corpus file alone.

    python3 scripts/make-fuzz-seeds.py
"""
import os
import struct
import zlib

HEADER_LEN = 4096


def header_page(index, generation, capacity, max_size, name=b"", options=0,
                permissions=3, compression=0, size=0, commit=0, in_tx=0):
    page = bytearray(HEADER_LEN)
    page[0:8] = b"EVMSHMRG"
    struct.pack_into("<III", page, 8, 2, HEADER_LEN, index)  # format version 2
    struct.pack_into("<IQQ", page, 20, generation, capacity, max_size)
    page[40:60] = bytes(range(1, 21))
    page[60] = permissions
    page[61] = options
    page[62] = compression
    struct.pack_into("<IH", page, 64, 4242, len(name))
    struct.pack_into("<Q", page, 72, 1_700_000_000_000)
    page[80:80 + len(name)] = name
    struct.pack_into("<I", page, 336, zlib.crc32(bytes(page[:336])))
    struct.pack_into("<QQ", page, 512, size, commit)
    struct.pack_into("<Q", page, 552, in_tx)
    return bytes(page)


def snapshot(regions):
    out = bytearray(b"EVMSHMSN" + struct.pack("<II", 1, len(regions)))
    for page, data, generation in regions:
        out += page
        out += struct.pack("<QQI", len(data), generation, zlib.crc32(data))
        out += bytes([0, 0, 0, 0])
        out += struct.pack("<Q", len(data)) + data
    crc = zlib.crc32(bytes(out))
    return bytes(out + b"EVMSHMND" + struct.pack("<I", crc))


def undo_record(kind, page, payload, generation):
    head = struct.pack("<IQIQ", kind, page, len(payload), generation)
    crc = zlib.crc32(head + payload)
    return head + struct.pack("<I", crc) + payload


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


root = "fuzz"
persistent = 1
# Headers: a plain one, a named persistent auto-grow one, a checksummed one.
write(f"{root}/corpus/header/plain", b"\x00" + header_page(1, 1, 4096, 4096))
write(f"{root}/corpus/header/named", b"\x00" + header_page(7, 3, 8192, 5000, b"prices", options=persistent | 2))
write(f"{root}/corpus/header/checksummed", b"\x00" + header_page(2, 9, 4096, 100, options=32 | persistent, compression=2))
# Snapshots: empty, one region, two regions with names.
write(f"{root}/corpus/snapshot/empty", b"\x00" + snapshot([]))
write(f"{root}/corpus/snapshot/one", b"\x00" + snapshot([(header_page(1, 1, 4096, 4096, options=persistent), b"hello", 2)]))
write(f"{root}/corpus/snapshot/two", b"\x00" + snapshot([
    (header_page(1, 1, 4096, 4096, b"a", options=persistent), b"x" * 100, 1),
    (header_page(3, 2, 8192, 8192, b"b", options=persistent | 2), bytes(range(256)) * 20, 5),
]))
# F1 (open): a valid snapshot whose only region has handle index 0xF0000000.
write(f"{root}/open/snapshot/f1-huge-index", b"\x00" + snapshot([(header_page(0xF0000000, 1, 4096, 4096, options=persistent), b"x", 1)]))
