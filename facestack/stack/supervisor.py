"""A small process supervisor: start children in order, wait until each is healthy, restart a crashed
one with back-off (saying which and why), stop all in reverse order on request. ``https://`` health
URLs are verified against ``health_tls`` (a private CA; a client certificate for mutual TLS)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from facestack.core.errors import FacestackError
from facestack.stack.config import RestartPolicy, ServiceSpec, StackConfig

log = logging.getLogger(__name__)


class StackError(FacestackError):
    """A child that cannot be started or never became healthy."""


def resolve_command(command: list[str], cwd: Path) -> list[str]:
    """The first word found beside this Python (the venv's console scripts), on PATH, or as given."""
    exe = command[0]
    local = Path(sys.executable).parent / exe
    if "/" not in exe and local.exists():
        return [str(local), *command[1:]]
    found = shutil.which(exe)
    if found:
        return [found, *command[1:]]
    return [str((cwd / exe).resolve()) if "/" in exe else exe, *command[1:]]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class Child:
    spec: ServiceSpec
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    log_file: IO[bytes] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, cfg: StackConfig, cwd: Path) -> None:
        self.cfg = cfg
        self.cwd = cwd
        self.children = [Child(s, backoff=cfg.restart.initial_backoff_s) for s in cfg.services]
        self._stopping = asyncio.Event()
        self.up = asyncio.Event()  # set once every service answered its health check
        self._task: asyncio.Task[None] | None = None

    def start(self) -> "asyncio.Task[None]":
        """Run the stack in a background task (``stop()`` then await the task to end it)."""
        self._task = asyncio.create_task(self.run())
        return self._task

    async def wait_up(self, timeout: float | None = None) -> None:
        """Return once every service is healthy; raise the start-up error if the stack ended first,
        or :class:`StackError` after ``timeout`` seconds."""
        assert self._task is not None, "call start() first"
        up = asyncio.create_task(self.up.wait())
        await asyncio.wait({up, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self.up.is_set():
            return
        up.cancel()
        if self._task.done():
            self._task.result()  # the start-up error
            raise StackError("the stack stopped while starting")
        raise StackError(f"the stack was not up after {timeout:g} s")

    async def run(self) -> None:
        """Start everything, supervise until ``stop()``, then stop everything."""
        try:
            for child in self.children:
                await self._start(child)
                await self._wait_healthy(child)
            log.info("stack up: %s", ", ".join(c.spec.name for c in self.children))
            self.up.set()
            watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
            await self._stopping.wait()
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        finally:
            await self._stop_all()

    def stop(self) -> None:
        self._stopping.set()

    async def _start(self, child: Child) -> None:
        argv = resolve_command(child.spec.command, self.cwd)
        env = {**os.environ, **child.spec.env}
        out: int | IO[bytes] | None = None
        if self.cfg.log_dir is not None:
            log_dir = self.cfg.log_dir if self.cfg.log_dir.is_absolute() else self.cwd / self.cfg.log_dir
            log_dir.mkdir(parents=True, exist_ok=True)
            if child.log_file is None:
                child.log_file = open(log_dir / f"{child.spec.name}.log", "ab")  # noqa: SIM115
            out = child.log_file
        log.info("starting %s: %s", child.spec.name, " ".join(argv))
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT if out is not None else None,
                start_new_session=True)
        except OSError as exc:
            raise StackError(f"cannot start {child.spec.name} ({argv[0]}): {exc.strerror}") from None
        child.started_at = time.monotonic()

    async def _wait_healthy(self, child: Child) -> None:
        url = child.spec.health_url
        if url is None:
            return
        deadline = time.monotonic() + child.spec.start_timeout_s
        last = "no answer"
        connector = aiohttp.TCPConnector(ssl=self.cfg.health_tls.context())  # https: verified
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2),
                                         connector=connector) as http:
            while True:
                if child.proc is not None and child.proc.returncode is not None:
                    raise StackError(f"{child.spec.name} {describe_exit(child.proc.returncode)} while starting")
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            log.info("%s is up (%s)", child.spec.name, url)
                            return
                        last = f"HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise StackError(f"{child.spec.name} not healthy at {url} after "
                                     f"{child.spec.start_timeout_s:g} s (last: {last})")
                await asyncio.sleep(0.25)

    async def _watch(self, child: Child) -> None:
        policy: RestartPolicy = self.cfg.restart
        while not self._stopping.is_set():
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping.is_set():
                return
            ran = time.monotonic() - child.started_at
            if ran >= policy.healthy_after_s:
                child.backoff = policy.initial_backoff_s
            log.warning("%s %s after %.1f s; restarting in %.1f s (restart %d)", child.spec.name,
                        describe_exit(code), ran, child.backoff, child.restarts + 1)
            try:
                await asyncio.wait_for(self._stopping.wait(), child.backoff)
                return
            except TimeoutError:
                pass
            child.backoff = min(child.backoff * 2, policy.max_backoff_s)
            child.restarts += 1
            try:
                await self._start(child)
            except StackError as exc:
                log.error("%s", exc)

    async def _stop_all(self) -> None:
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.returncode is not None:
                continue
            log.info("stopping %s", child.spec.name)
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.cfg.restart.stop_timeout_s)
            except TimeoutError:
                log.warning("%s did not stop in %.0f s; killing it", child.spec.name, self.cfg.restart.stop_timeout_s)
                proc.kill()
                await proc.wait()
        for child in self.children:
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None
