"""``log``: the smallest useful plugin, an example for plugin authors.

It defines one :class:`~facerouter.plugin.Plugin` subclass (no ``activate``), declares a config
model for its section of ``config/facerouter.yaml``::

    log:
      features: [gender, age]   # what to ask sfapi for (empty: log nothing)
      level: INFO

and logs one line per face with the camera, the time and the features sfapi returned.
"""
from __future__ import annotations

import logging
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict

from facerouter.objects import DetectFace
from facerouter.plugin import FrHTTPRequest, Plugin

log = logging.getLogger(__name__)


class LogConfig(BaseModel):
    """The ``log:`` section."""

    model_config = ConfigDict(extra="forbid")

    #: features asked for every frame (each one costs sfapi work)
    features: list[Literal["facen", "gender", "age", "emotions"]] = ["gender", "age"]
    #: level of the per-face line
    level: Literal["DEBUG", "INFO", "WARNING"] = "INFO"


class LogPlugin(Plugin):
    """Logs every face event."""

    config_model = LogConfig

    def __init__(self, ctx) -> None:  # noqa: ANN001 - the reference style: MyPlugin(ctx)
        super().__init__(ctx)
        self.level = getattr(logging, ctx.config.level)
        self.events = 0

    def preprocess(self, request: FrHTTPRequest, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Ask for the configured features (a sync hook: it runs in a worker thread)."""
        return tuple(self.ctx.config.features)

    async def process(self, request: FrHTTPRequest, photo: bytes, bbox: list[list[float]],
                      event_id: int, detection: DetectFace) -> None:
        """Log the face (an async hook: it runs on the event loop and must not block)."""
        self.events += 1
        params = request.params
        log.log(self.level, "face event %d: camera %s at %s, bbox %s, labels %s, features %s",
                event_id, params.cam_id, params.timestamp.isoformat(), bbox[0], params.labels,
                detection.features)

    def shutdown(self) -> None:
        """Say how many events were logged."""
        log.info("log plugin: %d face events logged", self.events)
