"""All three services over TLS with verified peers (a private CA made at run time): the video
worker posts frames to the router over mutual TLS, the router calls sfapi over mutual TLS, and
each refuses a client that does not verify or brings no certificate."""
from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from sfapi.client import Client
from sfapi.config import SfapiConfig
from facestack.core.configfile import validate
from sfapi.server.app import create_app
from tests.tls_ca import make_pki
from tests.video_worker.conftest import worker_config
from tests.video_worker.test_auth import finish, single_pass


def client_ctx(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def status_of(url: str, ctx: ssl.SSLContext | bool) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=ctx) as resp:
            return resp.status


async def test_stack_over_mutual_tls(tmp_path, models_dir, analyzer, start_router, start_worker,
                                     people_clip) -> None:
    pki = make_pki(tmp_path / "pki")
    server_tls = {"cert": str(pki.server_cert), "key": str(pki.server_key), "client_ca": str(pki.ca)}
    client_tls = {"ca": str(pki.ca), "cert": str(pki.client_cert), "key": str(pki.client_key)}
    # sfapi, served as its CLI serves it
    cfg = validate(SfapiConfig, {"models": {"dir": str(models_dir)}, "tls": server_tls,
                                 "gallery": {"path": str(tmp_path / "g.db")}}, "<test>")
    runner = web.AppRunner(create_app(cfg, analyzer=analyzer))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cfg.tls.context())
    await site.start()
    sf = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        router = await start_router(config={
            "tls": server_tls, "sfapi_tls": client_tls,
            "plugin_dir": str(Path(__file__).resolve().parents[2] / "plugins"),
            "disabled_plugins": ["persons", "webhook", "log"], "archive": {"gallery": "archive"},
            "plugin_timeout_s": 20.0}, sfapi_url=sf)
        rbase = router.base.replace("http://", "https://")
        worker = await start_worker(worker_config(tmp_path, rbase, [single_pass(people_clip[0])],
                                                  tls=server_tls, router_tls=client_tls))
        stats = await finish(worker)
        assert stats["faces_posted"] == 4 and stats["posts_failed"] == 0, stats
        # the router reached sfapi: the archive holds the frames' faces
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=client_ctx(pki.ca, pki.client_cert, pki.client_key))) as http:
            async with Client(sf, session=http) as c:
                assert len(await c["archive"].list()) == 4
        wbase = f"https://127.0.0.1:{worker.port}"
        good = client_ctx(pki.ca, pki.client_cert, pki.client_key)
        for base in (sf, rbase, wbase):
            assert await status_of(base + "/healthz", good) == 200
            # no client certificate; a CA that did not sign the server; plain http
            for ctx in (client_ctx(pki.ca), client_ctx(pki.other_ca, pki.client_cert, pki.client_key)):
                with pytest.raises(aiohttp.ClientError):
                    await status_of(base + "/healthz", ctx)
            with pytest.raises(aiohttp.ClientError):
                await status_of(base.replace("https://", "http://") + "/healthz", False)
    finally:
        await runner.cleanup()


def test_tls_config_is_checked(tmp_path) -> None:
    from facestack.core.tls import ClientTls, ServerTls
    with pytest.raises(ValueError, match="both cert and key"):
        ServerTls(cert=str(tmp_path / "x.pem"))
    with pytest.raises(ValueError, match="not a readable file"):
        ServerTls(cert=str(tmp_path / "x.pem"), key=str(tmp_path / "x.key"))
    with pytest.raises(ValueError, match="needs cert and key"):
        ServerTls(client_ca=str(tmp_path / "ca.pem"))
    with pytest.raises(ValueError, match="both cert and key"):
        ClientTls(cert=str(tmp_path / "c.pem"))
    assert ServerTls().context() is None
    assert ClientTls().context().verify_mode == ssl.CERT_REQUIRED
