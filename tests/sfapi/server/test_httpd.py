"""The JSON-error HTTP runner: aiohttp's own parse errors answer JSON, and `serve` stops on SIGTERM."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys

import pytest

from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from sfapi.server.httpd import parse_error_body

APP = """
import sys
from aiohttp import web
from sfapi.server.httpd import serve

async def hello(request):
    return web.json_response({"ok": True})

app = web.Application()
app.router.add_get("/", hello)
serve(app, "127.0.0.1", int(sys.argv[1]))
"""


@pytest.mark.parametrize("exc, status", [
    (LineTooLong(b"/v2/detect/aaaa...", 8190), 414), (LineTooLong(b"GET /x...", 8190), 414),
    (LineTooLong(b"X-Big: bbbb...", 8190), 431), (BadHttpMessage("Invalid method"), 400), (None, 500),
])
def test_parse_error_bodies(exc, status: int) -> None:
    got, body = parse_error_body(500 if exc is None else 400, exc, None)
    assert got == status and body["code"] and body["reason"]
    assert "aaaa" not in body["reason"] and "bbbb" not in body["reason"]


async def _request(port: int, raw: bytes) -> tuple[int, bytes, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    ctype = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-type:")), "")
    return int(head.split()[1]), body, ctype


async def test_serve_answers_json_and_stops_on_sigterm(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "app.py"
    script.write_text(APP)
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(port))
    try:
        for _ in range(200):
            try:
                status, body, _ = await _request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert status == 200 and json.loads(body) == {"ok": True}
        status, body, ctype = await _request(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 414 and ctype.startswith("application/json") and json.loads(body)["code"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
