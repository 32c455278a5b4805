"""``facestack up|demo`` (and its alias ``facerouter-stack``): run the whole stack under supervision."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from facestack.stack.config import load_stack
from facestack.stack.supervisor import StackError, Supervisor
from facestack.core.commands import exit_status

log = logging.getLogger("facestack.stack")


def build_parser() -> argparse.ArgumentParser:
    """The ``facerouter-stack`` alias's parser (``facestack`` adds more commands)."""
    parser = argparse.ArgumentParser(prog="facerouter-stack", description="Run sfapi, facerouter and video workers")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add ``up`` and ``demo`` to a script's subcommands; returns ``demo``'s parser."""
    up = sub.add_parser("up", help="start every service, restart crashed ones, stop all on Ctrl-C")
    up.add_argument("--config", type=Path, default=Path("config/stack.yaml"))
    up.add_argument("--check-config", action="store_true")
    up.add_argument("--log-level", default="INFO")
    demo = sub.add_parser("demo", help="the whole stack on a demo camera, printing entries as they arrive")
    demo.add_argument("--dir", type=Path, default=Path("var/demo"), help="demo data and configs (default var/demo)")
    demo.add_argument("--log-level", default="WARNING")
    return demo


async def run_stack(sup: Supervisor) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.stop)
    try:
        await sup.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args, "facerouter-stack")


def run(args: argparse.Namespace, prog: str) -> int:
    """Run ``up`` or ``demo``; ``prog`` names the script in error lines."""
    if args.command == "demo":
        from facestack.stack.run_demo import run_demo

        return exit_status(prog, lambda: asyncio.run(run_demo(args.dir.resolve(), sys.stdout)), (StackError,))

    def up() -> int:
        cfg = load_stack(args.config)
        if args.check_config:
            sys.stdout.write(f"config OK: {args.config}; services: {', '.join(s.name for s in cfg.services)}\n")
            return 0
        asyncio.run(run_stack(Supervisor(cfg, args.config.resolve().parent)))
        return 0

    return exit_status(prog, up, (StackError,))


if __name__ == "__main__":
    raise SystemExit(main())
