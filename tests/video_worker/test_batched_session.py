"""BatchedSession: a call alone runs on its caller's thread; calls that overlap share a pass."""
from __future__ import annotations

import threading

import numpy as np

from facestack.vision.engines.runtime import Session, TensorSpec
from video_worker.detector import BatchedSession


class Doubling(Session):
    """A fake network (rows x 2) that records the thread and batch size of each pass; ``gate``
    holds the first pass until released, so that other calls overlap it."""

    def __init__(self) -> None:
        self.name = "fake"
        self.inputs = (TensorSpec("x", (None, 2)),)
        self.outputs = (TensorSpec("y", (None, 2)),)
        self.passes: list[tuple[str, int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        self.passes.append((threading.current_thread().name, len(inputs[0])))
        self.entered.set()
        self.gate.wait(10)
        return [inputs[0] * 2]


def test_a_lone_call_runs_directly() -> None:
    inner = Doubling()
    inner.gate.set()
    sess = BatchedSession(inner, max_batch=8, max_wait_s=0.001)
    try:
        x = np.arange(6, dtype=np.float32).reshape(3, 2)
        for _ in range(3):
            np.testing.assert_array_equal(sess.run(x)[0], x * 2)
        assert [name for name, _ in inner.passes] == [threading.current_thread().name] * 3
        assert sess.direct_calls == 3 and sess.batched_calls == 0
    finally:
        sess.close()


def test_overlapping_calls_go_through_the_batcher() -> None:
    inner = Doubling()
    sess = BatchedSession(inner, max_batch=64, max_wait_s=0.05)
    results: dict[int, np.ndarray] = {}

    def call(k: int) -> None:
        results[k] = sess.run(np.full((k, 2), k, np.float32))[0]

    first = threading.Thread(target=call, args=(1,), name="first")
    first.start()
    try:
        assert inner.entered.wait(10)  # the first call holds the network (directly, on its thread)
        others = [threading.Thread(target=call, args=(k,)) for k in (2, 3)]
        for t in others:
            t.start()
        while sess.batched_calls < 2:  # both submitted to the batcher while the first is in flight
            threading.Event().wait(0.01)
        inner.gate.set()
        for t in [first, *others]:
            t.join(10)
    finally:
        inner.gate.set()
        sess.close()
    for k in (1, 2, 3):
        np.testing.assert_array_equal(results[k], np.full((k, 2), 2 * k, np.float32))
    assert inner.passes[0] == ("first", 1)
    assert all(name == "batcher-fake" for name, _ in inner.passes[1:])
    assert sum(n for _, n in inner.passes[1:]) == 5 and sess.direct_calls == 1 and sess.batched_calls == 2
