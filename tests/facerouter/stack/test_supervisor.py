"""The stack supervisor with real child processes: start order, health, restart with back-off, stop."""
from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from facerouter.stack.config import RestartPolicy, ServiceSpec, StackConfig, load_stack
from facerouter.stack.supervisor import StackError, Supervisor, describe_exit
from sfapi.errors import ConfigError

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
