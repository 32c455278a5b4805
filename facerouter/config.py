"""Typed configuration of the facerouter service (``config/facerouter.yaml``).

The file has the router's own keys (:class:`FacerouterConfig`) and, beside them, one section per
plugin, named after the plugin (``archive:``, ``webhook:`` ...). Router keys are validated at once;
a plugin's section is validated when the plugin is loaded, against the plugin's config model
(:func:`validate_section`). A top-level key that is neither a router key nor a loaded plugin is an
error, reported with its file line like every other config error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, create_model, field_validator

from facerouter.console.config import ConsoleConfig
from facerouter.errors import ConfigError, PluginConfigError
from facestack.core import errors as core_errors
from facestack.core.auth import AuthConfig
from facestack.core.tls import ClientTls, ServerTls
from facestack.core.configfile import StrictModel, parse_yaml, validate

__all__ = ["DEFAULT_PORT", "DEFAULT_BUCKETS", "FacerouterConfig", "LoadedConfig", "load",
           "validate_section"]

DEFAULT_PORT = 18820
#: Default buckets (seconds) of the latency histograms.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

M = TypeVar("M", bound=BaseModel)


class IdempotencyConfig(StrictModel):
    """The store of idempotency keys (:mod:`facerouter.dedup`)."""

    #: SQLite file of the keys seen (relative: to the config file); null: in memory, forgotten at
    #: exit (a post replayed after a router restart is then handled again)
    path: Path | None = Path("facerouter_events.sqlite")
    #: keys remembered; past it the oldest are forgotten
    max_keys: int = Field(1_000_000, ge=100)


class FacerouterConfig(StrictModel):
    """The router's own keys (plugin sections sit beside them in the file)."""

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    sfapi_url: str = "http://127.0.0.1:18411"
    #: API token the router (and its plugins) send to sfapi; null when sfapi checks none
    sfapi_token: str | None = None
    #: tokens clients of this router must send (frame endpoint and plugin routes); with
    #: required auto, checked off loopback, and for writes whenever any token is configured
    auth: AuthConfig = AuthConfig()
    #: the operator console at /ui/ and the event stream (facerouter.console.config)
    console: ConsoleConfig = ConsoleConfig()
    #: HTTPS (cert + key) and mutual TLS (client_ca): facestack.core.tls
    tls: ServerTls = ServerTls()
    #: verifying sfapi over https: CA bundle, and the client certificate for mutual TLS
    sfapi_tls: ClientTls = ClientTls()
    #: timeout of each sfapi call made by the router (plugins' calls use the same client default)
    sfapi_timeout_s: float = Field(15.0, gt=0, le=600)
    #: directories searched for plugin modules, in order (``name.py`` or ``name/__init__.py``)
    plugin_dir: list[Path] = []
    #: dotted module names of more plugins, loaded after the directories, in order
    plugins: list[str] = []
    #: plugins found in plugin_dir (or listed) that are not loaded, by name
    disabled_plugins: list[str] = []
    #: with no face0 in a frame: '' refuses it with 400, 'nnd' detects on photo at bbox
    detector: Literal["", "nnd"] = ""
    #: id of this process among the routers that share galleries (0..1023): part of every event id
    node_id: int = Field(0, ge=0, le=1023)
    #: frames handled at once; past it a frame is answered 503 (the sender retries)
    max_inflight: int = Field(64, ge=1, le=100_000)
    #: largest accepted request body in bytes
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    #: default time limit of one hook call (preprocess or process), in seconds
    plugin_timeout_s: float = Field(10.0, gt=0, le=3600)
    #: per-plugin overrides of plugin_timeout_s
    plugin_timeouts: dict[str, float] = {}
    #: time limit of each plugin's shutdown hook, in seconds
    shutdown_timeout_s: float = Field(10.0, gt=0, le=3600)
    #: how long SIGTERM waits for frames in flight before shutting plugins down, in seconds
    drain_timeout_s: float = Field(30.0, ge=0, le=3600)
    #: threads that run plugins' sync (def) hooks
    sync_workers: int = Field(8, ge=1, le=256)
    #: posts named by an Idempotency-Key header are handled once (see facerouter.dedup)
    idempotency: IdempotencyConfig = IdempotencyConfig()
    #: buckets (seconds) of the plugin and sfapi latency histograms
    metrics_buckets: list[float] = Field(default_factory=lambda: list(DEFAULT_BUCKETS), min_length=1)

    @field_validator("plugin_dir", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """``plugin_dir`` may be one directory or a list of them."""
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("sfapi_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("plugin_timeouts")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if not seconds > 0:
                raise ValueError(f"timeout of {name!r} must be > 0 seconds")
        return value

    @field_validator("metrics_buckets")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(value, value[1:])) or value[0] <= 0:
            raise ValueError("buckets must be positive and strictly increasing")
        return value

    def timeout_for(self, plugin: str) -> float:
        """The hook time limit of ``plugin``."""
        return self.plugin_timeouts.get(plugin, self.plugin_timeout_s)


@dataclass
class LoadedConfig:
    """A parsed config file: router settings, raw plugin sections and where each key was written."""

    router: FacerouterConfig
    sections: dict[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)

    def section(self, plugin: str) -> dict[str, Any]:
        """The raw section of ``plugin`` (empty when the file has none)."""
        raw = self.sections.get(plugin)
        return dict(raw) if raw else {}

    def check_sections(self, plugins: list[str]) -> None:
        """Fail on a top-level key that is neither a router key nor a loaded or disabled plugin."""
        for name in self.sections:
            if name not in plugins and name not in self.router.disabled_plugins:
                line = self.lines.get((name,))
                where = f"{self.source}:{line}" if line else self.source
                known = ", ".join(plugins) or "none"
                raise ConfigError(f"{where} {name}: unknown key: not a router setting nor a loaded "
                                  f"plugin (plugins: {known})")

    def events_path(self) -> Path | None:
        """``idempotency.path``, a relative one resolved against the config file's directory."""
        path = self.router.idempotency.path
        return path if path is None or path.is_absolute() else self.base_dir / path

    def plugin_dirs(self) -> list[Path]:
        """``plugin_dir`` entries, relative ones resolved against the config file's directory."""
        return [d if d.is_absolute() else (self.base_dir / d) for d in self.router.plugin_dir]


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> LoadedConfig:
    """Read a config file (``None``: defaults only); ``overrides`` (e.g. ``--port``) win.

    Raises:
        ConfigError: with ``file:line key.path: message (got value)``.
    """
    data: dict[str, Any] = {}
    lines: dict[tuple[str | int, ...], int] = {}
    source = str(path) if path is not None else "<defaults>"
    base_dir = Path.cwd()
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
        try:
            data, lines = parse_yaml(text, source)
        except core_errors.ConfigError as exc:
            raise ConfigError(str(exc)) from None
        base_dir = Path(path).resolve().parent
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    known = set(FacerouterConfig.model_fields)
    router_data = {k: v for k, v in data.items() if k in known}
    sections = {k: v for k, v in data.items() if k not in known}
    for name, value in sections.items():
        if value is not None and not isinstance(value, dict):
            line = lines.get((name,))
            where = f"{source}:{line}" if line else source
            raise ConfigError(f"{where} {name}: a plugin section must be a mapping "
                              f"(got {value!r})")
    try:
        router = validate(FacerouterConfig, router_data, source, lines)
    except core_errors.ConfigError as exc:
        raise ConfigError(str(exc)) from None
    return LoadedConfig(router, sections, source, lines, base_dir)


def validate_section(config: LoadedConfig, plugin: str, model: type[M]) -> M:
    """Validate ``plugin``'s section against ``model``; errors name the plugin and the key.

    Raises:
        PluginConfigError: e.g. ``config/facerouter.yaml:31 webhook.urls.0: Input should be a
            valid string (got 5)``.
    """
    wrapper = create_model(f"{model.__name__}Section", __base__=StrictModel,
                           section=(model, Field(alias=plugin)))
    try:
        checked = validate(wrapper, {plugin: config.section(plugin)}, config.source, config.lines)
    except core_errors.ConfigError as exc:
        raise PluginConfigError(plugin, f"bad config section:\n{exc}") from None
    return checked.section  # type: ignore[attr-defined,no-any-return]
