"""Fixtures of the persons plugin tests: the real sfapi and the real facerouter on loopback, with
the built-in plugin directory and the persons plugin enabled on a temporary SQLite database."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from tests.facerouter.conftest import frame_parts, multipart, start_router  # noqa: F401 - fixture
from tests.facerouter.test_integration import face0_of

REPO = Path(__file__).resolve().parents[3]
PREFIX = "/v2"  # the richer shapes; /v1 (the reference shapes) is tested in tests/compat

#: face0 chips and boxes by photo name (deterministic: made once per session).
_CHIPS: dict[str, tuple[bytes, list[list[float]]]] = {}


@dataclass
class PersonsEnv:
    """A running sfapi + facerouter with the persons plugin, and helpers to talk to them."""

    sf: Any
    router: Any
    data: Path
    tmp: Path

    @property
    def plugin(self) -> Any:
        return self.router.router.registry["persons"].obj

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.router.http.request(method, self.router.base + PREFIX + path,
                                            **kw) as resp:
            raw = await resp.read()
            if resp.content_type == "application/json":
                return resp.status, json.loads(raw)
            return resp.status, raw

    async def upload(self, path: str, photo: str | bytes, source: str | None = "door",
                     **extra: Any) -> tuple[int, Any]:
        image = photo if isinstance(photo, bytes) else (self.data / "faces" / photo).read_bytes()
        parts: dict[str, Any] = {"image": image, **extra}
        if source is not None:
            parts["source"] = source
        body, ctype = multipart(parts)
        return await self.api("POST", path, data=body, headers={"Content-Type": ctype})

    async def chip(self, photo: str) -> tuple[bytes, list[list[float]]]:
        if photo not in _CHIPS:
            _CHIPS[photo] = await face0_of(self.sf, (self.data / "faces" / photo).read_bytes())
        return _CHIPS[photo]

    async def frame(self, photo: str, cam_id: str = "door", **overrides: Any) -> tuple[int, Any]:
        """Send a photo as the video worker would: photo, face0 chip, its bbox."""
        face0, bbox = await self.chip(photo)
        parts = frame_parts(photo=(self.data / "faces" / photo).read_bytes(), face0=face0,
                            bbox=json.dumps(bbox), cam_id=cam_id, labels="{}")
        parts.update(overrides)
        return await self.router.post_frame({k: v for k, v in parts.items() if v is not None})


StartPersons = Callable[..., Any]


@pytest.fixture
async def start_persons(start_server: Any, start_router: Any, data_dir: Path,
                        tmp_path: Path) -> AsyncIterator[StartPersons]:
    async def start(persons: dict[str, Any] | None = None, sf: Any = None,
                    db_name: str = "persons.db", router: dict[str, Any] | None = None
                    ) -> PersonsEnv:
        sf = sf or await start_server()
        section = {"enabled": True, "database_url": f"sqlite+aiosqlite:///{tmp_path / db_name}",
                   "images_dir": str(tmp_path / "images"), **(persons or {})}
        running = await start_router(config={"plugin_dir": str(REPO / "plugins"),
                                            "disabled_plugins": ["archive", "webhook", "log"],
                                            "plugin_timeout_s": 20.0, "persons": section,
                                            **(router or {})},
                                    sfapi_url=sf.base)
        return PersonsEnv(sf, running, data_dir, tmp_path)

    yield start


async def make_source(env: PersonsEnv, name: str = "door", **settings: Any) -> dict[str, Any]:
    status, body = await env.api("POST", "/sources", json={"name": name, **settings})
    assert status == 201, body
    return body
