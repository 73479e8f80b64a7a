"""Mutations of real-looking sources, shared by the property tests and the
long fuzz run (benchmarks/fuzz.py): every outcome of linting one must be
findings, GO001/GO002, or nothing -- never an exception or GO003."""

from __future__ import annotations

import random
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def seed_sources() -> list[bytes]:
    return [p.read_bytes() for p in sorted(FIXTURES.rglob("*.py")) if ".fixed." not in p.name]


def mutate(source: bytes, rng: random.Random, rounds: int = 3) -> bytes:
    data = source
    for _ in range(rng.randint(1, rounds)):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def delete_line(data, rng):
    lines = _lines(data)
    if len(lines) > 1:
        del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_line(data, rng):
    lines = _lines(data)
    index = rng.randrange(len(lines))
    lines.insert(index, lines[index])
    return b"\n".join(lines)


def swap_lines(data, rng):
    lines = _lines(data)
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return b"\n".join(lines)


def truncate(data, rng):
    return data[: rng.randrange(len(data) + 1)]


def random_bytes(data, rng):
    at = rng.randrange(len(data) + 1)
    return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[at:]


def nul_byte(data, rng):
    at = rng.randrange(len(data) + 1)
    return data[:at] + b"\x00" + data[at:]


def mixed_newlines(data, rng):
    return b"".join(part + rng.choice([b"\n", b"\r\n", b"\r"]) for part in data.split(b"\n"))


def invalid_encoding(data, rng):
    return data.replace(b"e", b"\xe9", rng.randint(1, 3))


def bom(data, rng):
    return b"\xef\xbb\xbf" + data


def tabs(data, rng):
    return data.replace(b"    ", b"\t", rng.randint(1, 20))


def odd_cookie(data, rng):
    return (
        rng.choice([b"# -*- coding: latin-1 -*-\n", b"# coding: nonsense\n", b"# vim: set fileencoding=utf-16 :\n"])
        + data
    )


def deep_nesting(data, rng):
    depth = rng.choice([50, 150, 400])
    return data + b"\nx = " + b"(" * depth + b"1" + b")" * depth + b"\n"


def splice(data, rng):
    lines = _lines(data)
    a = rng.randrange(len(lines))
    return b"\n".join(lines[:a] + [lines[a][: rng.randrange(len(lines[a]) + 1)]] + lines[a + 1 :])


MUTATIONS = [
    delete_line,
    duplicate_line,
    swap_lines,
    truncate,
    random_bytes,
    nul_byte,
    mixed_newlines,
    invalid_encoding,
    bom,
    tabs,
    odd_cookie,
    deep_nesting,
    splice,
]
