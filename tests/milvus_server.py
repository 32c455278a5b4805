"""A real Milvus server for the tests: one per test session, started from the pinned ``milvus``
wheel (sfapi.gallery.milvus_server) in a temporary folder on free loopback ports, stopped (with
every process it started) at the end.

``SFAPI_TEST_MILVUS_URI=http://host:port`` runs the same tests against a server you already have
(another version, a cluster) instead; the tests that kill and restart the server then skip.
Tests keep apart by collection prefix (:func:`unique_prefix`), not by server.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from sfapi.gallery.milvus import MilvusStore
from sfapi.gallery.milvus_server import LocalMilvus, MilvusUnavailable

ENV_URI = "SFAPI_TEST_MILVUS_URI"
#: Faster internal clocks than a production server (whose defaults are in brackets): a Strong read
#: waits for the next time tick (200 ms), loading a collection for the query coordinator's
#: checkers (1000 / 3000 ms; its collection observer still ticks once a second, so a load takes
#: 1.5-2 s). Behaviour is the same, the tests just wait less; the bench runs the defaults.
TEST_SETTINGS = {
    "proxy.timeTickInterval": 10,
    "queryCoord.checkInterval": 100,
    "queryCoord.distPullInterval": 100,
    "queryCoord.checkChannelInterval": 100,
    "queryCoord.checkSegmentInterval": 100,
    "queryCoord.leaderViewUpdateInterval": 0.1,
}


class MilvusUnderTest:
    """The session's server: ``uri`` always; ``local`` (kill / restart) only when we started it."""

    def __init__(self, uri: str, local: LocalMilvus | None) -> None:
        self.uri = uri
        self.local = local
        #: the collection prefix of tests that clean up after themselves (:func:`clean_store`)
        self.prefix = unique_prefix()

    def need_local(self) -> LocalMilvus:
        if self.local is None:
            pytest.skip(f"needs the server this test session starts ({ENV_URI} names another)")
        return self.local


def unique_prefix() -> str:
    """A collection-name prefix no other test uses (Milvus names: letters, digits, _)."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusUnderTest]:
    """The real Milvus server of this test session (see the module docstring)."""
    pytest.importorskip("pymilvus")
    external = os.environ.get(ENV_URI)
    if external:
        yield MilvusUnderTest(external, None)
        return
    # started from this (the main) thread: the server dies with the test run even if it is killed
    server = LocalMilvus(Path(tmp_path_factory.mktemp("milvus-server")), settings=TEST_SETTINGS,
                         die_with_parent=True)
    try:
        server.start()
    except MilvusUnavailable as exc:
        pytest.skip(f"no real Milvus server: {exc}")
    try:
        yield MilvusUnderTest(server.uri, server)
    finally:
        server.kill()  # its data is thrown away: no need to wait for a graceful stop


async def drop_all(store: MilvusStore) -> None:
    """Drop every gallery of ``store`` (the next test on its prefix starts empty)."""
    for info in await store.list_galleries():
        await store.drop_gallery(info.name)


@pytest.fixture
async def clean_store(milvus_server: MilvusUnderTest) -> AsyncIterator[MilvusStore]:
    """An opened MilvusStore on the session's server with no gallery, emptied again afterwards.
    Tests share one prefix, so the catalog collection is created (and loaded, 1.5-2 s) once."""
    store = MilvusStore(milvus_server.uri, prefix=milvus_server.prefix)
    await store.open()
    await drop_all(store)
    yield store
    await drop_all(store)
    await store.close()
