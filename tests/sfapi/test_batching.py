import threading
import time

import numpy as np
import pytest

from facestack.vision.engines.batching import DynamicBatcher


def test_concurrent_blocks_share_a_forward_pass_and_get_their_rows() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        gate.wait(2)
        calls.append(len(batch))
        return [batch * 2, batch.sum(axis=1)]

    b = DynamicBatcher("t", forward, max_batch=16, max_wait_s=0.05)
    try:
        blocks = [np.full((k, 3), i, np.float32) for i, k in enumerate([1, 2, 3, 4])]
        futs = [b.submit(x) for x in blocks]
        gate.set()
        for x, f in zip(blocks, futs):
            doubled, sums = f.result(5)
            np.testing.assert_array_equal(doubled, x * 2)
            np.testing.assert_array_equal(sums, x.sum(axis=1))
        assert sum(calls) == 10
        assert len(calls) < 4  # at least two blocks shared one pass
    finally:
        b.close()


def test_max_batch_is_respected() -> None:
    sizes: list[int] = []

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        sizes.append(len(batch))
        time.sleep(0.01)
        return [batch]

    b = DynamicBatcher("t", forward, max_batch=4, max_wait_s=0.02)
    try:
        futs = [b.submit(np.zeros((1, 2), np.float32)) for _ in range(10)]
        for f in futs:
            f.result(5)
        assert max(sizes) <= 4 and sum(sizes) == 10
    finally:
        b.close()


def test_failure_reaches_every_caller_and_the_batcher_keeps_working() -> None:
    fail = [True]

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        if fail[0]:
            raise RuntimeError("boom")
        return [batch]

    b = DynamicBatcher("t", forward, max_batch=8, max_wait_s=0.01)
    try:
        f = b.submit(np.zeros((2, 2), np.float32))
        with pytest.raises(RuntimeError, match="boom"):
            f.result(5)
        fail[0] = False
        assert b.submit(np.ones((1, 2), np.float32)).result(5)[0].shape == (1, 2)
        assert b.pending_rows == 0
    finally:
        b.close()


def test_observer_sees_batches_and_closed_batcher_refuses() -> None:
    seen: list[tuple[str, int]] = []
    b = DynamicBatcher("net", lambda x: [x], max_batch=8, max_wait_s=0.0,
                       observer=lambda name, rows, s: seen.append((name, rows)))
    b.submit(np.zeros((3, 1), np.float32)).result(5)
    b.close()
    assert seen == [("net", 3)]
    with pytest.raises(RuntimeError):
        b.submit(np.zeros((1, 1), np.float32))
