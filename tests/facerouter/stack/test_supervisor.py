"""The stack supervisor with real child processes: start order, health, restart with back-off, stop."""
from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from facestack.stack.config import RestartPolicy, ServiceSpec, StackConfig, load_stack
from facestack.stack.supervisor import StackError, Supervisor, describe_exit
from sfapi.errors import ConfigError
from facestack.core.tls import ClientTls
from tests.tls_ca import make_pki

CHILD = textwrap.dedent('''
    import http.server, os, pathlib, signal, sys, threading
    port, marker, crash_once, events = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    srv = http.server.HTTPServer(("127.0.0.1", port), H)
    def term(*_):
        with open(events, "a") as f:
            f.write(f"stop {marker.name}\\n")
        os._exit(0)
    signal.signal(signal.SIGTERM, term)
    with open(events, "a") as f:  # once SIGTERM is handled: the test may stop us right after
        f.write(f"start {marker.name}\\n")
    if crash_once and not marker.exists():
        marker.write_text("crashed")
        threading.Timer(0.3, lambda: os._exit(3)).start()
    srv.serve_forever()
''')


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spec(tmp: Path, name: str, crash_once: bool = False) -> ServiceSpec:
    port = _port()
    script = tmp / "child.py"
    script.write_text(CHILD)
    return ServiceSpec(name=name, command=[sys.executable, str(script), str(port), str(tmp / f"{name}.marker"),
                                           "1" if crash_once else "0", str(tmp / "events.txt")],
                       health_url=f"http://127.0.0.1:{port}/", start_timeout_s=20)


async def test_start_in_order_restart_crashed_child_stop_in_reverse(tmp_path: Path, caplog) -> None:
    cfg = StackConfig(services=[_spec(tmp_path, "first"), _spec(tmp_path, "second", crash_once=True)],
                      restart=RestartPolicy(initial_backoff_s=0.1, max_backoff_s=1, healthy_after_s=60),
                      log_dir=tmp_path / "logs")
    sup = Supervisor(cfg, tmp_path)
    task = asyncio.create_task(sup.run())
    for _ in range(200):
        await asyncio.sleep(0.05)
        events = (tmp_path / "events.txt").read_text().splitlines() if (tmp_path / "events.txt").exists() else []
        if events.count("start second.marker") >= 2:
            break
    sup.stop()
    await asyncio.wait_for(task, 30)
    events = (tmp_path / "events.txt").read_text().splitlines()
    assert events[0] == "start first.marker" and events[1] == "start second.marker"
    assert events.count("start second.marker") == 2  # restarted once after its crash
    assert events[-2:] == ["stop second.marker", "stop first.marker"]  # reverse order
    assert "second exited with status 3" in caplog.text and "restarting in" in caplog.text
    assert (tmp_path / "logs").is_dir()


async def test_child_that_dies_while_starting_is_a_clear_error(tmp_path: Path) -> None:
    spec = ServiceSpec(name="broken", command=[sys.executable, "-c", "raise SystemExit(7)"],
                       health_url=f"http://127.0.0.1:{_port()}/", start_timeout_s=10)
    with pytest.raises(StackError, match="broken exited with status 7 while starting"):
        await Supervisor(StackConfig(services=[spec]), tmp_path).run()


def test_describe_exit() -> None:
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-9) == "killed by SIGKILL"


def test_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("services:\n  - {name: a, command: [x]}\n  - {name: a, command: [y]}\n")
    with pytest.raises(ConfigError, match="unique"):
        load_stack(path)
    path.write_text("services: []\n")
    with pytest.raises(ConfigError, match="services"):
        load_stack(path)


TLS_CHILD = textwrap.dedent('''
    import http.server, ssl, sys
    port, cert, key, client_ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
        def handle(self):
            try:
                super().handle()
            except (ssl.SSLError, OSError):
                pass
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: a client without a CA-signed certificate fails
    srv = http.server.HTTPServer(("127.0.0.1", port), H)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    srv.serve_forever()
''')


@pytest.mark.parametrize("trust", ["ca_and_client_cert", "system_cas", "other_ca", "no_client_cert"])
async def test_https_health_checks_verify_the_peer_with_a_private_ca(tmp_path: Path, trust: str) -> None:
    """``health_tls``: the supervisor checks an HTTPS service (mutual TLS, certificates from a CA
    made here) only when it trusts the CA and presents a client certificate; otherwise the service
    never counts as up and the error says why."""
    pki = make_pki(tmp_path / "pki")
    port = _port()
    script = tmp_path / "tls_child.py"
    script.write_text(TLS_CHILD)
    spec = ServiceSpec(name="secure", command=[sys.executable, str(script), str(port), str(pki.server_cert),
                                               str(pki.server_key), str(pki.ca)],
                       health_url=f"https://127.0.0.1:{port}/",
                       start_timeout_s=30 if trust == "ca_and_client_cert" else 3)
    client = {"cert": str(pki.client_cert), "key": str(pki.client_key)}
    health_tls = {"ca_and_client_cert": ClientTls(ca=str(pki.ca), **client),
                  "system_cas": ClientTls(**client),
                  "other_ca": ClientTls(ca=str(pki.other_ca), **client),
                  "no_client_cert": ClientTls(ca=str(pki.ca))}[trust]
    sup = Supervisor(StackConfig(services=[spec], health_tls=health_tls,
                                 restart=RestartPolicy(stop_timeout_s=5)), tmp_path)
    if trust == "ca_and_client_cert":
        task = sup.start()
        await sup.wait_up(60)
        sup.stop()
        await asyncio.wait_for(task, 30)
    else:
        with pytest.raises(StackError, match="secure not healthy at https://") as err:
            await sup.run()
        if trust != "no_client_cert":  # the server hangs up: the client sees only a reset
            assert "certificate" in str(err.value).lower(), err.value


def test_health_tls_config_is_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text("services:\n  - {name: a, command: [x]}\nhealth_tls: {ca: /nonexistent/ca.pem}\n")
    with pytest.raises(ConfigError, match="ca"):
        load_stack(cfg)
