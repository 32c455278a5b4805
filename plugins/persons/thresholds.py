"""The exact / ha / junk thresholds and the decision they make.

On the 0-100 scale of ``confidence * 100``, where ``confidence`` is sfapi's 0..1 similarity
(:mod:`facestack.vision.engines.similarity`: linear in the distance of the unit facens, 0.75 at the model's
match boundary). A best match scoring ``s`` gives:

* ``s >= exact`` -> ``exact`` (a confident match), ``ha <= s < exact`` -> ``ha`` (hesitation area),
  ``junk <= s < ha`` -> ``junk`` (a weak look-alike), ``s < junk`` or no person -> ``nm``.

The defaults 79.3 / 75.5 / 68.84 keep those meanings on our scale without any remapping; see
docs/persons.rst for the measurement. Thresholds live in the database (``settings``), so a change
over HTTP survives a restart; it applies to entries made after it, never to stored ones.
"""
from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from .config import ThresholdsConfig
from .sources import validation_error
from .storage import Database, settings

__all__ = ["ThresholdStore", "classify"]

_KEY = "thresholds"


def classify(score: float | None, t: ThresholdsConfig) -> str:
    """The result of a best match scoring ``score`` (0-100; ``None``: no candidate at all)."""
    if score is None or score < t.junk:
        return "nm"
    if score >= t.exact:
        return "exact"
    if score >= t.ha:
        return "ha"
    return "junk"


class ThresholdStore:
    """The current thresholds: read from the database at start, changed with :meth:`set`."""

    def __init__(self, db: Database, initial: ThresholdsConfig) -> None:
        self.db = db
        self.current = initial
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Use the stored thresholds; store the configured ones on first start."""
        async with self.db.begin() as conn:
            stored = (await conn.execute(sa.select(settings.c.value).where(
                settings.c.key == _KEY))).scalar_one_or_none()
            if stored is None:
                await conn.execute(settings.insert().values(key=_KEY,
                                                            value=self.current.model_dump()))
            else:
                self.current = ThresholdsConfig.model_validate(stored)

    async def set(self, body: dict[str, Any]) -> ThresholdsConfig:
        """Change some or all thresholds (keys left out keep their value)."""
        async with self._lock:
            try:
                new = ThresholdsConfig.model_validate({**self.current.model_dump(), **body})
            except ValidationError as exc:
                raise validation_error(exc) from None
            async with self.db.begin() as conn:
                await conn.execute(settings.update().where(settings.c.key == _KEY).values(
                    value=new.model_dump()))
            self.current = new
        return new
