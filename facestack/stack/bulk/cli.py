"""The ``facestack`` console script: site-wide operations over the running services and their stores.

* ``facestack persons import FOLDER|CSV --api URL --source NAME``: bulk enrolment
  (:mod:`.importer`); ``facestack persons export OUT``: the reverse (:mod:`.exporter`);
* ``facestack persons backup OUT`` / ``restore BACKUP``: the persons database alone
  (:mod:`.dbbackup`);
* ``facestack backup OUT`` / ``restore BACKUP``: the persons database and the galleries together,
  at one watermark (:mod:`.joint`);
* ``facestack token create|list|revoke``: API tokens in the persons database (:mod:`facestack.stack.bulk.tokencli`).

Backups and restores are recorded in the audit log (:mod:`.cliaudit`); exports are recorded by the
router (:mod:`plugins.persons.api_exports`).

Exit status: 0 done; 1 a failure (the message says which); 2 bad arguments or config; 3 the import
left persons to retry (errors or not reached: run it again); 130 stopped by Ctrl-C.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from facestack.core.tls import ClientTls

log = logging.getLogger("facestack")

DEFAULT_API = "http://127.0.0.1:18820"
DEFAULT_SFAPI = "http://127.0.0.1:18411"


def _api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default=DEFAULT_API,
                   help=f"the router serving the persons API (default {DEFAULT_API})")
    p.add_argument("--prefix", default="/v1", help="the persons plugin's api_prefix (default /v1)")
    p.add_argument("--token", help="API token of the router (Authorization: Bearer)")
    _tls_args(p)


def _tls_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ca", type=Path, metavar="FILE",
                   help="verify https:// services against this CA bundle (PEM; a private CA); "
                   "default: the system's CAs")
    p.add_argument("--cert", type=Path, metavar="FILE",
                   help="client certificate (PEM) for services that require one (mutual TLS)")
    p.add_argument("--key", type=Path, metavar="FILE", help="the client certificate's key (PEM)")


def _client_tls(args: argparse.Namespace) -> "ClientTls | None":
    """``--ca``/``--cert``/``--key`` checked (a missing file or half a pair is a config error)."""
    from pydantic import ValidationError

    from sfapi.errors import ConfigError
    from facestack.core.tls import ClientTls

    if args.ca is None and args.cert is None and args.key is None:
        return None
    try:
        return ClientTls(ca=_opt(args.ca), cert=_opt(args.cert), key=_opt(args.key))
    except ValidationError as exc:
        reason = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"--ca/--cert/--key: {reason}") from None


def _opt(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _store_args(p: argparse.ArgumentParser, sfapi: bool) -> None:
    p.add_argument("--router-config", type=Path, required=True,
                   help="the facerouter YAML config with the persons: section (database_url...)")
    p.add_argument("--section", default="persons",
                   help="the name of the persons plugin's section (default persons)")
    if sfapi:
        p.add_argument("--sfapi-config", type=Path, required=True,
                       help="the sfapi YAML config (gallery store)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facestack", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default="INFO")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


#: the commands :func:`add_commands` adds (the ``facestack`` script hands them to :func:`run`)
COMMANDS = ("persons", "backup", "restore", "token")


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the persons, backup, restore and token commands to a script's subcommands."""
    persons = sub.add_parser("persons", help="persons: bulk import and export, database backup")
    psub = persons.add_subparsers(dest="persons_command", required=True)
    imp = psub.add_parser("import", help="enrol a folder or a CSV of photos through the API")
    imp.add_argument("input", type=Path, help="a folder (<name>/*.jpg or <name>.jpg) or a CSV "
                     "(name, photo, meta columns...)")
    _api_args(imp)
    imp.add_argument("--source", required=True, help="the source the persons are enrolled from "
                     "(its manual_create_* settings apply)")
    imp.add_argument("--sfapi", default=DEFAULT_SFAPI,
                     help=f"sfapi's URL, for the several-faces check (default {DEFAULT_SFAPI})")
    imp.add_argument("--sfapi-token", help="API token of sfapi")
    imp.add_argument("--largest-face", action="store_true",
                     help="enrol the largest face of a photo with several (default: refuse it)")
    imp.add_argument("--on-match", choices=("refuse", "create", "reinit"),
                     help="a photo that matches an enrolled person: refuse it (the API's "
                     "default), create a new person anyway, or re-initialise the matched one")
    imp.add_argument("--concurrency", type=int, default=4, help="persons in flight (default 4)")
    imp.add_argument("--report", type=Path, default=Path("import-report.csv"),
                     help="the report, .csv or .json (default import-report.csv)")
    imp.add_argument("--state", type=Path,
                     help="the resume file (default: the report's name + .state.jsonl)")
    imp.add_argument("--retry-refused", action="store_true",
                     help="send again the persons an earlier run refused")
    imp.add_argument("--allow-urls", action="store_true", help="fetch photos given as URLs")
    imp.add_argument("--retries", type=int, default=3,
                     help="retries of a transient failure per photo (default 3)")
    imp.add_argument("--progress", choices=("auto", "bar", "log"), default="auto",
                     help="a bar on a terminal, log lines otherwise (default auto)")

    exp = psub.add_parser("export", help="the persons with their enrolled photos, importable")
    exp.add_argument("out", type=Path, help="a new folder")
    _api_args(exp)
    exp.add_argument("--state", type=Path, action="append", default=[],
                     help="an import's resume file naming persons (repeatable)")
    exp.add_argument("--concurrency", type=int, default=4)

    pb = psub.add_parser("backup", help="back up the persons database (online)")
    pb.add_argument("out", type=Path, help="a new folder")
    _store_args(pb, sfapi=False)
    pr = psub.add_parser("restore", help="restore the persons database into an empty one")
    pr.add_argument("backup", type=Path)
    _store_args(pr, sfapi=False)

    jb = sub.add_parser("backup", help="back up the persons database and the galleries together")
    jb.add_argument("out", type=Path, help="a new folder")
    _store_args(jb, sfapi=True)
    jr = sub.add_parser("restore", help="restore a joint backup into empty stores")
    jr.add_argument("backup", type=Path)
    _store_args(jr, sfapi=True)
    jr.add_argument("--sample", type=int, default=200,
                    help="vectors compared after the restore (default 200)")
    from facestack.stack.bulk.tokencli import add_parser as token_parser
    token_parser(sub)


def _run(coro_fn: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run a command; the first Ctrl-C sets its stop event, the second cancels it."""
    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        presses = 0

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                log.warning("stopping: no new work starts, what is in flight finishes "
                            "(Ctrl-C again to abandon it)")
                stop.set()
            elif task is not None:
                task.cancel()
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            pass
        try:
            code = await coro_fn(stop)
        except asyncio.CancelledError:
            return 130
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):
                pass
        return 130 if stop.is_set() and code in (0, 3) else code

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130


def _import(args: argparse.Namespace) -> int:
    from .importer import ImportOptions, run_import

    opts = ImportOptions(
        api=args.api, prefix=args.prefix, token=args.token, source=args.source,
        sfapi=None if args.largest_face else args.sfapi, sfapi_token=args.sfapi_token,
        on_match=args.on_match, largest_face=args.largest_face, concurrency=args.concurrency,
        retry_refused=args.retry_refused, allow_urls=args.allow_urls, retries=args.retries,
        report=args.report, tls=_client_tls(args),
        state=args.state or args.report.with_name(args.report.name + ".state.jsonl"))
    tty = {"auto": None, "bar": True, "log": False}[args.progress]

    async def go(stop: asyncio.Event) -> int:
        summary = await run_import(args.input, opts, stop=stop, tty=tty)
        return 0 if summary["error"] == 0 and summary["pending"] == 0 else 3
    return _run(go)


def _export(args: argparse.Namespace) -> int:
    from .persons_client import PersonsApi
    from .exporter import export_persons

    tls = _client_tls(args)

    async def go(stop: asyncio.Event) -> int:
        api = PersonsApi(args.api, args.prefix, args.token,
                         ssl=tls.context() if tls is not None else None)
        try:
            await export_persons(api, args.out, args.state, concurrency=args.concurrency)
        finally:
            await api.close()
        return 0
    return _run(go)


def _stores(args: argparse.Namespace) -> int:
    from sfapi.backup.manifest import new_backup_dir, read_manifest, verify, write_manifest

    from . import dbbackup, joint
    from .cliaudit import record_store_operation as record

    async def persons_db(stop: asyncio.Event) -> int:
        loop = asyncio.get_running_loop()
        url = dbbackup.persons_config(args.router_config, args.section).resolved_database_url()
        if args.persons_command == "backup":
            new_backup_dir(args.out)
            try:
                db = await dbbackup.backup_database(url, args.out)
                await loop.run_in_executor(None, lambda: write_manifest(
                    args.out, "facestack persons backup", {"persons": db.part}, [db.part["file"]]))
            except Exception as exc:
                await record(url, "BACKUP", "facestack persons backup", args.out, False, _why(exc))
                raise
            await record(url, "BACKUP", "facestack persons backup", args.out, True,
                         f"{len(db.faces)} persons")
            sys.stdout.write(f"backup of {len(db.faces)} persons in {args.out}\n")
            return 0
        try:
            manifest = await loop.run_in_executor(None, read_manifest, args.backup)
            if "persons" not in manifest:
                raise ValueError(f"{args.backup} holds no persons database backup")
            await loop.run_in_executor(None, verify, args.backup, manifest)
            result = await dbbackup.restore_database(args.backup, manifest["persons"], url)
        except Exception as exc:
            await record(None, "RESTORE", "facestack persons restore", args.backup, False, _why(exc))
            raise
        for table, (want, got) in result["tables"].items():
            sys.stdout.write(f"{table}: {got}/{want} rows\n")
        await record(url if result["ok"] else None, "RESTORE", "facestack persons restore",
                     args.backup, result["ok"], f"{len(result.get('faces') or {})} persons"
                     + ("" if result["ok"] else "; row counts differ from the manifest"))
        return 0 if result["ok"] else 1

    async def both(stop: asyncio.Event) -> int:
        url = dbbackup.persons_config(args.router_config, args.section).resolved_database_url()
        if args.command == "backup":
            try:
                manifest = await joint.backup_site(args.router_config, args.sfapi_config, args.out,
                                                   section=args.section)
            except Exception as exc:
                await record(url, "BACKUP", "facestack backup", args.out, False, _why(exc))
                raise
            c = manifest["consistency"]
            await record(url, "BACKUP", "facestack backup", args.out, True,
                         f"{c['persons']} persons, {len(manifest['galleries']['galleries'])} galleries")
            sys.stdout.write(f"backup of {c['persons']} persons and "
                             f"{len(manifest['galleries']['galleries'])} galleries in {args.out}"
                             f" (watermark {c['watermark']}; {len(c['missing_faces'])} persons "
                             "without their face)\n")
            return 0
        try:
            result = await joint.restore_site(args.backup, args.router_config, args.sfapi_config,
                                              section=args.section, sample=args.sample)
        except Exception as exc:
            await record(None, "RESTORE", "facestack restore", args.backup, False, _why(exc))
            raise
        for table, (want, got) in result.persons["tables"].items():
            sys.stdout.write(f"{table}: {got}/{want} rows\n")
        for name, r in result.galleries["galleries"].items():
            sys.stdout.write(f"gallery {name}: {r['restored']}/{r['faces']} faces, "
                             f"{r['sampled']} sampled, {len(r['mismatched'])} mismatched\n")
        for m in result.missing_faces:
            sys.stdout.write(f"person {m['pid']}: face {m['face_id']} is not in the backup\n")
        await record(url if result.ok else None, "RESTORE", "facestack restore", args.backup,
                     result.ok, "restored" if result.ok else "the restored stores differ from the backup")
        return 0 if result.ok else 1

    return _run(persons_db if args.command == "persons" else both)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS` (parsed by a parser :func:`add_commands` made)."""
    from facestack.core.commands import exit_status
    from sfapi.errors import SfapiError

    from .persons_client import ApiUnavailable
    from .items import ItemsError
    from .outcome import Fatal

    failures: tuple[type[BaseException], ...] = (Fatal, ItemsError, FileExistsError, ApiUnavailable,
                                                  SfapiError, OSError, ValueError)

    def command() -> int:
        if args.command == "persons" and args.persons_command == "import":
            return _import(args)
        if args.command == "persons" and args.persons_command == "export":
            return _export(args)
        if args.command == "token":
            from facestack.stack.bulk.tokencli import run as token_run
            return _run(lambda stop: token_run(args))
        return _stores(args)

    return exit_status("facestack", command, failures, name_config=True)


if __name__ == "__main__":
    raise SystemExit(main())
