"""A real Milvus server on this machine without Docker: the standalone server binary that the PyPI
``milvus`` wheel ships (2.3.x: etcd embedded, local disk storage, rocksmq), run as a child process
on loopback ports of our choosing. The tests, the Milvus bench and demos use it; production sites
run Milvus their own way and only give sfapi its URI.

Ports (what we found running 2.3.5 here): the wheel's ``milvus-server --data DIR`` picks the
first free port at or above each default (gRPC proxy 19530, internal proxy 19529, rootcoord
53100, querycoord 19531, querynode 21123, indexnode 21121, datacoord 13333, datanode 21124, the
metrics / ``/healthz`` HTTP port 9091 from the ``METRICS_PORT`` variable), but the embedded etcd
ignores ``etcd.endpoints`` and always listens on 127.0.0.1:2379 (client) and :2380 (peer), so a
second server on one machine fails. Here every port is given explicitly and etcd gets its own
config file (``etcd.config.path``: listen / advertise URLs on free loopback ports). There is no
MinIO (``common.storageType: local``) and no NATS (``mq.type: rocksmq``). The coordinator and node
gRPC ports listen on every interface (2.3 has no listen-address setting); each component's
``ip`` is set to 127.0.0.1 so the nodes talk to each other over loopback only.

The binary is unpacked once per version into a cache folder (``~/.cache/facestack/milvus-<ver>``,
about 250 MB) and shared by every server; each server's config, logs and data live in its own
data folder, so a server killed with SIGKILL can be started again on the same folder and ports.
"""
from __future__ import annotations

import fcntl
import logging
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from facestack.core.errors import FacestackError

log = logging.getLogger(__name__)

#: components whose gRPC port is in the wheel's config template (name in the template -> section)
_COMPONENTS = {
    "root_coord_port": "rootCoord", "proxy_port": "proxy", "query_coord_port": "queryCoord",
    "query_node_port": "queryNode", "index_node_port": "indexNode", "data_coord_port": "dataCoord",
    "data_node_port": "dataNode",
}
#: server ports are drawn from here: below Linux's ephemeral range (32768-60999), so no outgoing
#: connection holds one by chance
_PORT_RANGE = (20000, 32000)


class MilvusUnavailable(FacestackError, RuntimeError):
    """The ``milvus`` wheel is missing or its server binary cannot run on this machine."""


@dataclass(frozen=True)
class MilvusPorts:
    """Every port a standalone server listens on."""

    proxy: int
    proxy_internal: int
    root_coord: int
    query_coord: int
    query_node: int
    index_coord: int
    index_node: int
    data_coord: int
    data_node: int
    etcd_client: int
    etcd_peer: int
    metrics: int

    @classmethod
    def free(cls) -> "MilvusPorts":
        """Ports free on every interface now (a race with other programs remains: a start that
        fails to bind is retried on new ports by :meth:`LocalMilvus.start`)."""
        names = [f for f in cls.__dataclass_fields__]
        chosen: list[int] = []
        rng = random.Random()
        while len(chosen) < len(names):
            port = rng.randrange(*_PORT_RANGE)
            if port not in chosen and _port_free(port):
                chosen.append(port)
        return cls(*chosen)


def _port_free(port: int) -> bool:
    for host in ("0.0.0.0", "127.0.0.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def wheel_version() -> str:
    """The installed ``milvus`` wheel's version, or MilvusUnavailable."""
    try:
        import milvus
    except ImportError as exc:
        raise MilvusUnavailable("the 'milvus' wheel is not installed (pip install 'facestack[test]')") from exc
    return str(milvus.__version__)


def unpack_binary(cache: Path | None = None) -> Path:
    """The server binary of the installed wheel, unpacked once into ``cache`` (idempotent and safe
    across processes: the wheel's own unpacker under a file lock)."""
    version = wheel_version()
    import milvus

    base = Path(cache or Path(user_cache_dir("facestack")) / f"milvus-{version}")
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        milvus._initialize_data_files(str(base))  # skips files whose .lzma checksum is unchanged
    exe = base / "bin" / "milvus"
    if not exe.is_file():
        raise MilvusUnavailable(f"the milvus wheel {version} has no server binary for this platform")
    return exe


class LocalMilvus:
    """One standalone Milvus server in ``data_dir``, listening on ``ports`` (free ones by default).

    ``start()`` blocks until pymilvus can list collections; ``kill()`` is SIGKILL (a crash);
    ``stop()`` asks politely first. Starting again on the same folder keeps the data.
    ``settings``: extra ``section.key: value`` settings of the template's ``milvus.yaml`` (only keys
    the template has). ``die_with_parent``: the server gets SIGKILL when the thread that started it
    ends (Linux ``PR_SET_PDEATHSIG``), so a test run that is killed leaves no server behind; start
    it from a thread that lives as long as the server should (the main thread).
    """

    def __init__(self, data_dir: Path, *, ports: MilvusPorts | None = None, cache: Path | None = None,
                 settings: dict[str, Any] | None = None, die_with_parent: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.ports = ports or MilvusPorts.free()
        self.cache = cache
        self.settings = dict(settings or {})
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.ports.proxy}"

    @property
    def version(self) -> str:
        return wheel_version()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- config --------------------------------------------------------------------------------
    def write_config(self) -> Path:
        """Render the wheel's config template for this folder and these ports; returns the
        config folder."""
        import milvus

        p = self.ports
        ports = {"proxy_port": p.proxy, "proxy_internal_port": p.proxy_internal, "root_coord_port": p.root_coord,
                 "query_coord_port": p.query_coord, "query_node_port": p.query_node,
                 "index_coord_port": p.index_coord, "index_node_port": p.index_node,
                 "data_coord_port": p.data_coord, "data_node_port": p.data_node, "etcd_port": p.etcd_client}
        cfg = milvus.MilvusServerConfig(data_dir=str(self.data_dir))
        cfg.resolve_storage()
        for key, value in ports.items():
            cfg.set(key, value)
        for section in _COMPONENTS.values():
            cfg.set(f"{section}.ip", "127.0.0.1")
        cfg.write_config()
        conf_dir = self.data_dir / "configs"
        etcd_conf = conf_dir / "etcd.yaml"
        client, peer = f"http://127.0.0.1:{p.etcd_client}", f"http://127.0.0.1:{p.etcd_peer}"
        etcd_conf.write_text(
            "name: default\n"
            f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n"
            "initial-cluster-state: new\n")
        path = conf_dir / "milvus.yaml"
        settings = {"etcd.config.path": str(etcd_conf),
                    "common.gracefulStopTimeout": 10,  # seconds: a polite stop is bounded too
                    **self.settings}
        path.write_text(yaml_set(path.read_text(), settings))
        return conf_dir

    # -- process -------------------------------------------------------------------------------
    def start(self, timeout_s: float = 180.0) -> None:
        """Start the server and wait until pymilvus can talk to it; a start that fails to bind a
        port is retried once on fresh ports."""
        for attempt in (1, 2):
            try:
                self._start_once(timeout_s)
                return
            except _PortClash as exc:
                if attempt == 2:
                    raise RuntimeError(str(exc)) from None
                log.warning("Milvus in %s: %s; retrying on other ports", self.data_dir, exc)
                self.ports = MilvusPorts.free()

    def _start_once(self, timeout_s: float) -> None:
        if self.running():
            raise RuntimeError(f"Milvus in {self.data_dir} is already running (pid {self.pid})")
        exe = unpack_binary(self.cache)
        conf_dir = self.write_config()
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, DEPLOY_MODE="STANDALONE", METRICS_PORT=str(self.ports.metrics),
                   MILVUS_RUN_DIR=str(self.data_dir / "run"), MILVUSCONF=str(conf_dir) + "/",
                   LD_LIBRARY_PATH=":".join(filter(None, [str(exe.parent), os.environ.get("LD_LIBRARY_PATH")])))
        with open(logs / "milvus-stdout.log", "ab") as out, open(logs / "milvus-stderr.log", "ab") as err:
            # its own session: stop() and kill() reach every process it starts
            self.proc = subprocess.Popen([str(exe), "run", "standalone"], cwd=self.data_dir, env=env,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent if self.die_with_parent else None)
        log.info("Milvus %s starting in %s (pid %d, %s)", self.version, self.data_dir, self.proc.pid, self.uri)
        try:
            self._wait_ready(time.monotonic() + timeout_s)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, deadline: float) -> None:
        health = f"http://127.0.0.1:{self.ports.metrics}/healthz"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        healthy = False
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise self._exited()
            if not healthy:
                try:
                    with opener.open(health, timeout=2) as resp:
                        healthy = b"OK" in resp.read()
                except (urllib.error.URLError, OSError):
                    pass
            if healthy and self._client_ok():
                log.info("Milvus in %s is ready at %s", self.data_dir, self.uri)
                return
            time.sleep(0.3)
        raise TimeoutError(f"Milvus in {self.data_dir} not ready after the timeout; logs in {self.data_dir / 'logs'}")

    def _client_ok(self) -> bool:
        try:
            from pymilvus import MilvusClient

            client = MilvusClient(uri=self.uri, timeout=5)
        except Exception:  # not accepting connections yet
            return False
        try:
            client.list_collections(timeout=5)
            return True
        except Exception:
            return False
        finally:
            client.close()

    def _exited(self) -> Exception:
        code = self.proc.returncode if self.proc is not None else None
        self.proc = None
        tail = _tail(self.data_dir / "logs" / "milvus-stderr.log") + _tail(self.data_dir / "logs" / "milvus-stdout.log")
        if "address already in use" in tail:
            return _PortClash(f"a port was taken while starting: {tail[-300:]}")
        if code in (126, 127) or "error while loading shared libraries" in tail or "Exec format error" in tail:
            return MilvusUnavailable(f"the Milvus server binary cannot run here (exit {code}): {tail[-500:]}")
        return RuntimeError(f"Milvus in {self.data_dir} exited with code {code}: {tail[-1500:]}")

    def kill(self) -> None:
        """SIGKILL the server's whole process group (a crash: nothing is flushed)."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("Milvus in %s ignored SIGTERM for %.0f s: killing it", self.data_dir, timeout_s)
        self.kill()

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group of its own session: the server and its children
        except ProcessLookupError:
            pass

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "uri": self.uri, "data_dir": str(self.data_dir), "pid": self.pid,
                "ports": asdict(self.ports)}


class _PortClash(Exception):
    pass


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def yaml_set(text: str, settings: dict[str, Any]) -> str:
    """``text`` (a block-style YAML file indented by two spaces, as Milvus' config template) with
    each dotted key set to its value: an existing line is rewritten (its comment dropped), a
    missing key is added at the top of its section (sections are created at the end)."""
    lines = text.splitlines()
    for dotted, value in settings.items():
        parts = dotted.split(".")
        start, end, depth = 0, len(lines), 0
        for depth, name in enumerate(parts):
            indent = "  " * depth
            found = None
            for i in range(start, end):
                line = lines[i]
                if line.startswith(indent + name + ":") and not line.startswith(indent + " "):
                    found = i
                    break
            if found is None:
                break
            start = found + 1
            end = next((j for j in range(start, end) if lines[j].strip() and not lines[j].startswith(indent + " ")
                        and not lines[j].lstrip().startswith("#")), end)
        else:  # every level exists: rewrite the leaf
            leaf = start - 1
            lines[leaf] = f"{'  ' * (len(parts) - 1)}{parts[-1]}: {_yaml_scalar(value)}"
            continue
        new = [f"{'  ' * d}{parts[d]}:" for d in range(depth, len(parts) - 1)]
        new.append(f"{'  ' * (len(parts) - 1)}{parts[-1]}: {_yaml_scalar(value)}")
        at = start if depth else len(lines)
        lines[at:at] = new
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tail(path: Path, size: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
