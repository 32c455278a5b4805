"""The ``persons:`` config section (:class:`PersonsConfig`), validated when the plugin loads.

Every key is optional. The plugin is off unless ``enabled: true``: a router whose plugin directory
holds the persons package but whose config has no ``persons:`` section loads an inert plugin that
asks for nothing, opens no database and adds no route.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facerouter.delivery import DeliverySettings

__all__ = ["PersonsConfig", "ThresholdsConfig", "GatesConfig", "WebhookSubscription", "RESULTS",
           "default_data_dir"]

#: Entry results, as in the reference (NeuroIO).
RESULTS: tuple[str, ...] = ("new", "reinit", "exact", "ha", "junk", "nm", "det")


def default_data_dir() -> Path:
    """Where the database and the entry images live by default (the user's data dir)."""
    return Path(platformdirs.user_data_dir("facestack")) / "persons"


class ThresholdsConfig(BaseModel):
    """Initial thresholds on the 0-100 scale (``confidence * 100`` of sfapi's 0..1 similarity).

    Only the first start uses them: once the database holds thresholds (set over HTTP), those win.
    """

    model_config = ConfigDict(extra="forbid")

    exact: float = Field(79.3, ge=0, le=100)
    ha: float = Field(75.5, ge=0, le=100)
    junk: float = Field(68.84, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsConfig:
        if not self.junk <= self.ha <= self.exact:
            raise ValueError(f"thresholds must satisfy junk <= ha <= exact, got junk={self.junk}, "
                             f"ha={self.ha}, exact={self.exact}")
        return self


class GatesConfig(BaseModel):
    """Limits of the auto-create gates a source turns on (``auto_create_check_*``)."""

    model_config = ConfigDict(extra="forbid")

    #: auto_create_check_blur: least variance of the Laplacian of the grey face image
    min_sharpness: float = Field(40.0, ge=0)
    #: auto_create_check_exposure: allowed mean brightness of the face, 0..255
    min_brightness: float = Field(50.0, ge=0, le=255)
    max_brightness: float = Field(210.0, ge=0, le=255)
    #: auto_create_check_exposure: most pixels allowed at 0-5 or 250-255 (fraction)
    max_clipped: float = Field(0.25, ge=0, le=1)
    #: auto_check_face_angle: largest |yaw| and |roll| in degrees (from 5-point landmarks)
    max_yaw: float = Field(30.0, gt=0, le=90)
    max_roll: float = Field(25.0, gt=0, le=90)


class WebhookSubscription(DeliverySettings):
    """One webhook receiver group for new entries, filtered by result and source name; delivery
    settings (urls, headers, retries, queue...) as the built-in ``webhook`` plugin's."""

    urls: list[str] = Field(min_length=1)
    #: results sent (empty: every result)
    results: list[Literal["new", "reinit", "exact", "ha", "junk", "nm", "det"]] = []
    #: source names sent (empty: every source)
    sources: list[str] = []
    include_images: bool = False


class ErasureConfig(BaseModel):
    """What ``DELETE {prefix}/persons/{pid}?erase=true`` removes besides the person and entries."""

    model_config = ConfigDict(extra="forbid")

    #: galleries (the ``archive`` plugin's) whose faces looking like the person are removed
    archive_galleries: list[str] = []
    #: similarity (0-1) at which an archive face counts as the person's
    archive_threshold: float = Field(0.75, gt=0, le=1)
    #: folders where backups (``facestack backup``, ``facestack persons backup``, ``sfapi gallery
    #: backup``) are kept: the report lists those made before the erasure as still holding the person
    backup_dirs: list[str] = []


class PersonsConfig(BaseModel):
    """The ``persons:`` section."""

    model_config = ConfigDict(extra="forbid")

    #: off by default: set true to open the database, add the routes and identify faces
    enabled: bool = False
    #: SQLAlchemy async URL: sqlite+aiosqlite:///path.db (default: persons.db in the data dir)
    #: or postgresql+asyncpg://user:password@host:5432/dbname
    database_url: str = ""
    #: the sfapi gallery holding one face per person (created with meta schema {pid: string})
    gallery: str = Field("persons", min_length=1)
    #: directory of the entry images (default: images/ in the data dir)
    images_dir: str = ""
    #: URL prefix of the HTTP API in the reference's shapes (NeuroIO), on the router's port
    api_prefix: str = "/v1"
    #: URL prefix of the same API in this service's richer shapes (entry pages with
    #: ``next_page``, the emotion network's mood names, 204 on every delete)
    rich_api_prefix: str = "/v2"
    #: label of the frame naming its source; without it the frame's cam_id is the source name
    source_label: str = "source"
    thresholds: ThresholdsConfig = ThresholdsConfig()
    gates: GatesConfig = GatesConfig()
    #: days entry images are kept when the source's ``license`` does not say (0: forever)
    image_retention_days: int = Field(30, ge=0)
    #: days entries (with their images) are kept when the source's ``entry_retention_days`` does
    #: not say (0: forever)
    entry_retention_days: int = Field(0, ge=0)
    #: how often the retention job runs
    retention_interval_s: float = Field(3600.0, gt=0)
    #: JPEG parts kept for the results a source lists in store_images_for_results
    store_images: list[Literal["face", "photo"]] = ["face", "photo"]
    default_limit: int = Field(20, ge=1)
    max_limit: int = Field(1000, ge=1)
    #: largest uploaded photo for person create / reinit
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    #: create the gallery at start when it is missing
    create_gallery: bool = True
    webhooks: list[WebhookSubscription] = []
    erasure: ErasureConfig = ErasureConfig()

    @field_validator("api_prefix", "rich_api_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = "/" + value.strip("/")
        if value == "/" or not all(part.replace("-", "").replace("_", "").isalnum()
                                   for part in value[1:].split("/")):
            raise ValueError("api_prefix must be a path like /v1 (letters, digits, - and _)")
        return value

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database_url must start with sqlite+aiosqlite:// or "
                             "postgresql+asyncpg://")
        return value

    @model_validator(mode="after")
    def _limits(self) -> PersonsConfig:
        if self.api_prefix == self.rich_api_prefix:
            raise ValueError("api_prefix and rich_api_prefix must differ")
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit must not exceed max_limit")
        if self.gates.min_brightness >= self.gates.max_brightness:
            raise ValueError("gates.min_brightness must be below gates.max_brightness")
        return self

    def resolved_database_url(self) -> str:
        """``database_url``, or a SQLite file in the data dir."""
        return self.database_url or f"sqlite+aiosqlite:///{default_data_dir() / 'persons.db'}"

    def resolved_images_dir(self) -> Path:
        """``images_dir``, or ``images/`` in the data dir."""
        return Path(self.images_dir) if self.images_dir else default_data_dir() / "images"
