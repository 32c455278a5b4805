"""The job API's OpenAPI document (``GET /openapi.json``), built from the config models it serves."""
from __future__ import annotations

from typing import Any

from video_worker.config import JOB_ID

__all__ = ["document"]

_ERROR = {"type": "object", "required": ["code", "desc"],
          "properties": {"code": {"type": "string"}, "desc": {"type": "string"},
                         "param": {"type": "string"}, "id": {"type": "string"}}}

_STATUS = ["starting", "running", "reconnecting", "finished", "stopped", "unauthorized", "pending",
           "failed"]
_COUNTERS = ("frames_decoded", "frames_analysed", "frames_dropped", "frames_skipped_motion",
             "faces_detected", "tracks", "faces_posted", "posts_rejected", "posts_failed",
             "posts_spooled", "posts_dropped", "reconnects", "posts_pending", "spool_bytes")

_JOB_IN = {
    "type": "object", "required": ["stream_url"], "additionalProperties": False,
    "properties": {
        "stream_url": {"type": "string", "minLength": 1,
                       "description": "rtsp(s)/http(s) URL, or a file under source.allowed_file_roots"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "router_url": {"type": "string", "nullable": True, "description": "http(s) base of facerouter"},
        "single_pass": {"type": "boolean"},
        "settings": {"type": "object", "description": "per-camera settings (the defaults' keys)"},
    },
}

_JOB = {
    "type": "object",
    "required": ["id", "stream_url", "labels", "router_url", "single_pass", "settings", "status",
                 "status_msg", "statistic", "worker_id", "epoch", "from_config"],
    "properties": {
        "id": {"type": "string"}, "stream_url": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "router_url": {"type": "string"}, "single_pass": {"type": "boolean"},
        "settings": {"type": "object"}, "status": {"type": "string", "enum": _STATUS},
        "status_msg": {"type": "string"},
        "worker_id": {"type": "string", "nullable": True,
                      "description": "the worker running the job; null while it waits for one"},
        "epoch": {"type": "integer", "minimum": 0, "description": "claims of the job so far (fencing)"},
        "from_config": {"type": "boolean", "description": "seeded from a worker's YAML jobs"},
        "statistic": {"type": "object", "properties": {
            **{name: {"type": "integer", "minimum": 0} for name in _COUNTERS},
            "processed_duration": {"type": "number"}, "decode_fps": {"type": "number"},
            "last_error": {"type": "string", "nullable": True}}},
    },
}

_HEALTH = {"type": "object", "required": ["status", "worker_id", "jobs", "job_status", "posts_pending"],
           "properties": {"status": {"type": "string", "enum": ["ok", "stopping"]},
                          "worker_id": {"type": "string"}, "jobs": {"type": "integer"},
                          "job_status": {"type": "object", "additionalProperties": {"type": "integer"}},
                          "posts_pending": {"type": "integer"},
                          "store": {"type": "string", "enum": ["ok", "unreachable"]}}}

_WORKER = {"type": "object",
           "required": ["id", "url", "capacity", "load", "heartbeat_age_s", "alive", "left"],
           "properties": {"id": {"type": "string"}, "url": {"type": "string"},
                          "capacity": {"type": "integer", "minimum": 1},
                          "load": {"type": "integer", "minimum": 0,
                                   "description": "jobs it holds a lease on (finished ones aside)"},
                          "heartbeat_age_s": {"type": "number", "minimum": 0},
                          "alive": {"type": "boolean", "description": "heartbeat within the lease"},
                          "left": {"type": "boolean", "description": "stopped cleanly"}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(description, {"$ref": "#/components/schemas/Error"})


_AUTH = {"401": _err("no valid API token (when tokens are checked)"),
         "403": _err("a read-only token on a write"),
         "503": _err("the job store is unreachable (STORE_UNAVAILABLE)")}
_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": JOB_ID.pattern}}


def document(version: str) -> dict[str, Any]:
    """The job API's OpenAPI 3.0 document."""
    job = {"$ref": "#/components/schemas/Job"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "video-worker job API", "version": version,
                 "description": "Camera jobs of a fleet of video workers sharing one job store: "
                                 "every worker answers for every job. Errors are {code, desc[, param]}."},
        "components": {"schemas": {"Error": _ERROR, "Job": _JOB, "JobIn": _JOB_IN, "Worker": _WORKER},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/job/{id}": {
                "parameters": [_ID],
                "post": {"summary": "Create (201) or replace (200) a job",
                         "requestBody": {"required": True, "content": {
                             "application/json": {"schema": {"$ref": "#/components/schemas/JobIn"}}}},
                         "responses": {"200": _json("replaced", job), "201": _json("created", job),
                                       "400": _err("a bad key, or refused by the source policy (param)"),
                                       **_AUTH, "413": _err("the body is over 1 MiB")}},
                "get": {"summary": "One job", "responses": {
                    "200": _json("the job", job), **_AUTH, "404": _err("no such job")}},
                "delete": {"summary": "Stop and forget a job (its spool too)", "responses": {
                    "204": {"description": "deleted"}, **_AUTH, "404": _err("no such job")}},
            },
            "/job/{id}/restart": {
                "parameters": [_ID],
                "post": {"summary": "Restart a job (counters start over)", "responses": {
                    "200": _json("the job", job), **_AUTH, "404": _err("no such job")}},
            },
            "/jobs": {"get": {"summary": "Every job", "responses": {
                "200": _json("the jobs", {"type": "array", "items": job}), **_AUTH}}},
            "/workers": {"get": {"summary": "The workers of the fleet, with load and heartbeat age",
                                 "responses": {"200": _json("the workers", {
                                     "type": "array", "items": {"$ref": "#/components/schemas/Worker"}}),
                                     **_AUTH}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {
                "200": _json("serving", _HEALTH), "503": _json("stopping", _HEALTH)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}, **_AUTH}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _json("OpenAPI 3.0", {"type": "object"}), **_AUTH}}},
        },
    }
