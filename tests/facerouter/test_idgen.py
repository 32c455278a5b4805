"""Event ids: unique, time-ordered, 64-bit, unique across nodes."""
from __future__ import annotations

import threading

import pytest

from facerouter.idgen import EPOCH_MS, IdGenerator, split_id


def test_ids_increase_and_carry_time_and_node() -> None:
    gen = IdGenerator(7)
    ids = [gen() for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(0 < i < 2 ** 63 for i in ids)
    ms, node, _ = split_id(ids[0])
    assert node == 7 and ms > EPOCH_MS


def test_same_millisecond_and_clock_going_back() -> None:
    now = [EPOCH_MS + 1000]
    gen = IdGenerator(1, clock_ms=lambda: now[0])
    first = [gen() for _ in range(5000)]  # more than 4096 in one millisecond
    now[0] -= 500  # the clock steps back
    later = [gen() for _ in range(10)]
    ids = first + later
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert split_id(first[4096])[0] == EPOCH_MS + 1001


def test_nodes_never_collide_and_threads_are_safe() -> None:
    now = [EPOCH_MS + 5]
    gens = [IdGenerator(n, clock_ms=lambda: now[0]) for n in (0, 1, 1023)]
    ids = [g() for g in gens for _ in range(100)]
    assert len(set(ids)) == len(ids)
    gen = IdGenerator(2)
    out: list[int] = []

    def work() -> None:
        out.extend(gen() for _ in range(2000))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 8000


@pytest.mark.parametrize("node", [-1, 1024, True, "1"])
def test_bad_node_id(node) -> None:
    with pytest.raises(ValueError):
        IdGenerator(node)
