"""Typed config of the stack launcher (``config/stack.yaml``)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from facestack.core.configfile import StrictModel, load_config
from facestack.core.tls import ClientTls


class ServiceSpec(StrictModel):
    """One child process: its command line, where to find out it is up, its environment."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    command: list[str] = Field(min_length=1)
    health_url: str | None = None
    start_timeout_s: float = Field(120.0, gt=0)
    env: dict[str, str] = {}


class RestartPolicy(StrictModel):
    """Back-off for restarting a crashed child: doubles from initial to max; resets after a healthy run."""

    initial_backoff_s: float = Field(1.0, gt=0)
    max_backoff_s: float = Field(30.0, gt=0)
    healthy_after_s: float = Field(30.0, gt=0)
    stop_timeout_s: float = Field(20.0, gt=0)


class StackConfig(StrictModel):
    """The services in start order (stopped in reverse), the restart policy and the log folder."""

    services: list[ServiceSpec] = Field(min_length=1)
    restart: RestartPolicy = RestartPolicy()
    log_dir: Path | None = None  # None: children write to this terminal's stderr
    #: how ``https://`` health URLs are verified: ``ca`` (a private CA's PEM bundle; default: the
    #: system's CAs) and ``cert``/``key`` for services that require a client certificate (mutual
    #: TLS); relative paths: to the working directory. Verification is never off.
    health_tls: ClientTls = ClientTls()


def load_stack(path: Path) -> StackConfig:
    cfg = load_config(path, StackConfig)
    names = [s.name for s in cfg.services]
    if len(set(names)) != len(names):
        from sfapi.errors import ConfigError

        raise ConfigError(f"{path}: services: names must be unique (got {names})")
    return cfg
