"""``facestack persons import``: enrol a folder or a CSV of photos through the running persons API.

Each person (see :mod:`.items`) is enrolled by ``POST {prefix}/persons`` with its photo and the
chosen source, so the site's rules apply: the source's face-size gate, the thresholds, the
enrolment contract on a match (refused with the matching pid unless ``on_match`` says ``create``
or ``reinit``). Before sending, the importer checks what the API would take silently:

* the file must decode (a photo that does not is ``unreadable``; formats other than JPEG, PNG and
  WEBP are re-encoded as JPEG);
* unless ``largest_face``, the photo must show one face large enough to enrol: sfapi's detect
  (the detector enrolment uses) finds the faces, and two or more of at least the source's
  ``manual_create_facesize_threshold`` are ``several_faces`` (none at all is ``no_face``). The
  check looks at a copy scaled down so that such a face keeps :data:`CHECK_SIDE` px a side (the
  detector's work falls with the pixel count); a copy showing no face is checked again at full
  size before the photo is called ``no_face``.

A person with several photos is tried photo by photo until one enrols; a match stops at once (the
person is already there). ``concurrency`` persons are in flight at a time. Every outcome is
appended to the resume file (:mod:`.state`) as it happens, so a second run skips what the first
settled, and the report (:mod:`.report`) is rewritten at the end of every run, stopped or not.

Stopping: setting ``stop`` (the console script does on the first Ctrl-C) starts no new person and
lets the requests in flight finish; their outcomes are recorded. Cancelling the run (a second
Ctrl-C) abandons them: they stay ``sending`` in the resume file and the next run settles them.
"""
from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, TextIO

import aiohttp
from PIL import Image

from sfapi.client import SFApiError, SFApiRemoteError
from facestack.core.tls import ClientTls

from .persons_client import ApiUnavailable, FaceCounter, PersonsApi, fetch_url
from .items import Item, read_items
from .outcome import Fatal, Outcome, failed, from_answer, refused
from .progress import Progress
from .report import build_rows, summarize, write_report
from .state import StateFile

__all__ = ["ImportOptions", "run_import", "load_photo", "prepare_photo"]

log = logging.getLogger(__name__)

#: largest photo read or fetched (the persons API's default ``max_upload_bytes``)
MAX_PHOTO_BYTES = 20 * 1024 * 1024
#: most pixels decoded from one photo
MAX_PIXELS = 60_000_000
_SENT_AS_IS = {"JPEG", "PNG", "WEBP"}
#: side in px that the smallest face the source enrols keeps in the several-faces check's copy
CHECK_SIDE = 100.0
#: clock difference allowed between this machine and the router's, when telling whether a person
#: was created by a request an interrupted run left in flight
CLOCK_MARGIN_S = 5.0


@dataclass
class ImportOptions:
    """Settings of one import run (the console script's options)."""

    api: str
    source: str
    report: Path
    state: Path
    prefix: str = "/v1"
    token: str | None = None
    #: sfapi's URL, for the several-faces check (not needed with ``largest_face``)
    sfapi: str | None = None
    sfapi_token: str | None = None
    on_match: Literal["refuse", "create", "reinit"] | None = None
    largest_face: bool = False
    concurrency: int = 4
    retry_refused: bool = False
    allow_urls: bool = False
    retries: int = 3
    retry_delay_s: float = 1.0
    timeout_s: float = 120.0
    #: seconds between summary log lines when not on a terminal
    log_interval_s: float = 10.0
    #: how ``https://`` router and sfapi URLs are verified (a private CA, a client certificate for
    #: mutual TLS); None: the system's CAs
    tls: ClientTls | None = None


def load_photo(data: bytes) -> bytes:
    """Check that ``data`` is a decodable photo; the bytes to send (re-encoded as JPEG unless JPEG,
    PNG or WEBP). Raises ValueError with the reason. Blocking (run it in an executor)."""
    return prepare_photo(data, None)[0]


def prepare_photo(data: bytes, min_area: float | None) -> tuple[bytes, bytes | None, float]:
    """:func:`load_photo`, plus the copy the several-faces check sends (``min_area`` given): scaled
    down so that a face of ``min_area`` keeps :data:`CHECK_SIDE` px a side, which is all the check
    needs to see, at a fraction of the detector's work. Returns (to send, to check, its scale)."""
    if not data:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "?"
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{img.width}x{img.height} is more than {MAX_PIXELS} pixels")
            img.load()
            send = data
            if fmt not in _SENT_AS_IS:
                out = io.BytesIO()
                img.convert("RGB").save(out, "JPEG", quality=95)
                send = out.getvalue()
            if min_area is None:
                return send, None, 1.0
            scale = min(1.0, CHECK_SIDE / max(min_area, 1.0) ** 0.5) if min_area > 0 else 1.0
            if scale > 0.85:
                return send, send, 1.0
            small = img.convert("RGB").resize((max(1, round(img.width * scale)),
                                               max(1, round(img.height * scale))),
                                              Image.Resampling.BILINEAR)
            out = io.BytesIO()
            small.save(out, "JPEG", quality=90)
            return send, out.getvalue(), small.width / img.width
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad file
        raise ValueError(f"cannot decode: {exc or type(exc).__name__}") from None


class _Run:
    def __init__(self, opts: ImportOptions, state: StateFile, api: PersonsApi,
                 counter: FaceCounter | None, min_area: float, progress: Progress,
                 stop: asyncio.Event,
                 on_settled: Callable[[str, dict[str, Any]], None] | None) -> None:
        self.opts = opts
        self.state = state
        self.api = api
        self.counter = counter
        self.min_area = min_area
        self.progress = progress
        self.stop = stop
        self.on_settled = on_settled
        #: names a previous run left in flight, and when it sent them
        self.interrupted = {name: float(rec.get("ts") or 0.0) for name, rec in state.last.items()
                            if rec.get("status") == "sending"}
        self.fatal: Fatal | None = None
        self._fetch: aiohttp.ClientSession | None = None

    async def worker(self, queue: asyncio.Queue[Item]) -> None:
        while not self.stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                outcome, photo = await self.person(item)
            except Fatal as exc:
                self.fatal = self.fatal or exc
                self.stop.set()
                return
            rec = self.state.record(item.name, outcome.status, photo=photo, meta=item.meta,
                                    outcome=outcome)
            self.progress.update(item.name, outcome.status, outcome.reason, outcome.detail)
            if self.on_settled is not None:
                self.on_settled(item.name, rec)

    async def person(self, item: Item) -> tuple[Outcome, str]:
        """Try the photos of one person in order; the outcome and the photo it is about."""
        refusals: list[tuple[str, Outcome]] = []
        for photo in item.photos:
            outcome = await self.photo(item, photo)
            if outcome.status != "refused" or outcome.reason == "match":
                return outcome, photo
            refusals.append((photo, outcome))
        first_photo, first = refusals[0]
        if len(refusals) > 1:
            first.detail = "; ".join(f"{Path(p).name}: {o.reason}: {o.detail}"
                                     for p, o in refusals)
        return first, first_photo

    async def photo(self, item: Item, photo: str) -> Outcome:
        loop = asyncio.get_running_loop()
        try:
            raw = await self.read(photo)
            data, check, scale = await loop.run_in_executor(
                None, prepare_photo, raw, None if self.counter is None else self.min_area)
        except ValueError as exc:
            return refused("unreadable", str(exc))
        if self.counter is not None and check is not None:
            checked = await self.check_faces(check, scale)
            if checked is not None and checked.reason == "no_face" and scale < 1.0:
                checked = await self.check_faces(data, 1.0)  # smaller faces: let the API say
            if checked is not None:
                return checked
        outcome = await self.send(item, photo, data)
        if (outcome.status == "refused" and outcome.reason == "match" and outcome.matched_pid
                and item.name in self.interrupted
                and await self.created_since(outcome.matched_pid, self.interrupted[item.name])):
            # the request of an interrupted run enrolled this photo: that person is this one
            return Outcome("enrolled", None, "enrolled by an interrupted run (found by its match)",
                           pid=outcome.matched_pid)
        return outcome

    async def created_since(self, pid: str, sent_ts: float) -> bool:
        """Whether person ``pid`` was created after ``sent_ts`` (Unix s, less a clock margin)."""
        try:
            created = await self.api.person_created(pid)
        except ApiUnavailable as exc:
            log.warning("cannot read person %s (%s): the match is reported as a refusal", pid, exc)
            return False
        return created is not None and created >= sent_ts - CLOCK_MARGIN_S

    async def read(self, photo: str) -> bytes:
        if photo.startswith(("http://", "https://")):
            if not self.opts.allow_urls:
                raise ValueError("photo URLs are not fetched unless --allow-urls is given")
            if self._fetch is None:
                self._fetch = aiohttp.ClientSession()
            return await fetch_url(self._fetch, photo, MAX_PHOTO_BYTES, self.opts.timeout_s)

        def read_file() -> bytes:
            path = Path(photo)
            try:
                if path.stat().st_size > MAX_PHOTO_BYTES:
                    raise ValueError(f"larger than {MAX_PHOTO_BYTES} bytes")
                return path.read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read the file: {exc.strerror or exc}") from None
        return await asyncio.get_running_loop().run_in_executor(None, read_file)

    async def check_faces(self, data: bytes, scale: float) -> Outcome | None:
        """``no_face`` / ``several_faces`` / ``unreadable`` from sfapi's detect on the photo or its
        scaled copy; None when fine."""
        assert self.counter is not None
        try:
            areas = [a / (scale * scale) for a in await self.counter.areas(data)]
        except SFApiRemoteError as exc:
            if (exc.status or 500) < 500:
                return refused("unreadable", f"sfapi refused the photo: {exc.reason}")
            return failed(f"sfapi: {exc}")
        except SFApiError as exc:
            return failed(f"sfapi: {exc}")
        if not areas:
            return refused("no_face", "no face found on the photo")
        big = [a for a in areas if a >= self.min_area]
        if len(big) > 1:
            return refused("several_faces",
                           f"{len(big)} faces of at least {self.min_area:.0f} px^2 "
                           f"(largest {areas[0]:.0f}, next {areas[1]:.0f}); --largest-face "
                           "enrols the largest")
        return None

    async def send(self, item: Item, photo: str, data: bytes) -> Outcome:
        self.state.record(item.name, "sending", photo=photo, meta=item.meta)
        outcome = failed("not sent")
        for attempt in range(self.opts.retries + 1):
            try:
                status, body = await self.api.create_person(
                    data, self.opts.source, self.opts.on_match, filename=Path(photo).name)
                outcome = from_answer(status, body)
            except ApiUnavailable as exc:
                outcome = failed(str(exc))
            if outcome.status != "error" or attempt == self.opts.retries or self.stop.is_set():
                return outcome
            await asyncio.sleep(self.opts.retry_delay_s * 2 ** attempt)
        return outcome

    async def close(self) -> None:
        if self._fetch is not None:
            await self._fetch.close()


async def run_import(source: Path, opts: ImportOptions, *, stop: asyncio.Event | None = None,
                     stream: TextIO | None = None, tty: bool | None = None,
                     on_settled: Callable[[str, dict[str, Any]], None] | None = None
                     ) -> dict[str, Any]:
    """Enrol the persons of ``source`` (folder or CSV); returns the summary of the report.

    Raises :class:`.items.ItemsError` for an unreadable input and :class:`.outcome.Fatal` when the
    API refuses in a way every photo would (credentials, an unknown source).
    """
    loop = asyncio.get_running_loop()
    if opts.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not opts.largest_face and not opts.sfapi:
        raise ValueError("the several-faces check needs sfapi's URL (--sfapi), or give "
                         "--largest-face")
    items = await loop.run_in_executor(None, read_items, source)
    state = await loop.run_in_executor(None, StateFile, opts.state)
    stop = stop or asyncio.Event()
    ctx = opts.tls.context() if opts.tls is not None else None
    api = PersonsApi(opts.api, opts.prefix, opts.token, opts.timeout_s,
                     connections=opts.concurrency + 2, ssl=ctx)
    counter = None if opts.largest_face else FaceCounter(opts.sfapi or "", opts.sfapi_token,
                                                         opts.timeout_s, ssl=ctx)
    run: _Run | None = None
    try:
        src = await api.source(opts.source)
        if src is None:
            raise Fatal(f"the source {opts.source!r} does not exist; create it first "
                        "(POST /sources) or name another with --source")
        todo = [i for i in items if not state.is_done(i.name, opts.retry_refused)]
        skipped = len(items) - len(todo)
        log.info("import %s: %d persons, %d settled by an earlier run, %d to enrol "
                 "(%d in flight, source %s)", source, len(items), skipped, len(todo),
                 opts.concurrency, opts.source)
        progress = Progress(len(items), skipped, stream=stream, tty=tty,
                            interval_s=opts.log_interval_s)
        run = _Run(opts, state, api, counter,
                   float(src.get("manual_create_facesize_threshold") or 0), progress, stop,
                   on_settled)
        queue: asyncio.Queue[Item] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)
        workers = [asyncio.create_task(run.worker(queue), name=f"import-{n}")
                   for n in range(min(opts.concurrency, max(len(todo), 1)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            progress.finish()
        if run.fatal is not None:
            raise run.fatal
        if stop.is_set() and queue.qsize():
            log.warning("import stopped: %d persons not started; run the same command again to "
                        "go on", queue.qsize())
    finally:
        rows = build_rows(items, state.last)
        await loop.run_in_executor(None, write_report, opts.report, rows)
        await loop.run_in_executor(None, state.close)
        if run is not None:
            await run.close()
        await api.close()
        if counter is not None:
            await counter.close()
    summary = summarize(rows)
    log.info("import %s: %d enrolled, %d refused %s, %d errors, %d pending; report %s",
             source, summary["enrolled"], summary["refused"], summary["reasons"] or "",
             summary["error"], summary["pending"], opts.report)
    return summary
