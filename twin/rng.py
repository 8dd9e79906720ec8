"""Seeds become independent named streams, so adding a service never perturbs another's draws."""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(name: str) -> int:
    """A stable 32-bit key for a stream name (Python's ``hash`` is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def generator(seed: int, name: str) -> np.random.Generator:
    """The generator of stream ``name`` under ``seed``: same inputs, same draws, any process."""
    seq = np.random.SeedSequence(entropy=seed, spawn_key=(stream_key(name),))
    return np.random.Generator(np.random.PCG64(seq))


def replication_seeds(seed: int, n: int) -> list[int]:
    """Seeds for ``n`` independent replications derived from one base seed."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]
