"""``facerouter`` console script: serve frames to plugins, or check a config.

``facerouter --config config/facerouter.yaml [--host H] [--port P] [--log-level L]``;
``--check-config`` validates the file and loads the plugins (imports, config sections, hook
signatures) without listening, shuts them down and exits (a plugin's ``activate`` may still try
sfapi, as the built-in archive does to create its gallery). SIGTERM and SIGINT shut the
service down cleanly (see :meth:`facerouter.app.Router.shutdown`).
"""
from __future__ import annotations

import argparse
import dataclasses
import asyncio
import logging
import signal
import sys
from pathlib import Path

from facerouter.config import DEFAULT_PORT, LoadedConfig, load
from facerouter.dedup import EventStoreError
from facerouter.errors import ConfigError, PluginError
from facestack.core.auth import AuthSetupError

log = logging.getLogger("facerouter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facerouter",
                                     description="Plugin host for the video worker's face events")
    parser.add_argument("--config", type=Path, help="YAML config (default: embedded defaults)")
    parser.add_argument("--host", help="bind address (overrides config)")
    parser.add_argument("--port", type=int, help=f"port (overrides config; default {DEFAULT_PORT})")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config and the plugins, then exit")
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve(config: LoadedConfig) -> None:
    """Run the router until SIGTERM or SIGINT, then shut it down."""
    from facerouter.app import Router

    router = Router(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await router.start()
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await router.shutdown()


async def check(config: LoadedConfig) -> list[str]:
    """Load the plugins as start-up would, without listening; returns their names."""
    from facerouter.app import Router

    # the event store stays in memory: checking a config writes nothing
    idem = config.router.idempotency.model_copy(update={"path": None})
    config = dataclasses.replace(config, router=config.router.model_copy(update={"idempotency": idem}))
    router = Router(config)
    try:
        await router.start(sockets=[])
        return router.registry.names()
    finally:
        await router.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load(args.config, {"host": args.host, "port": args.port})
        if args.check_config:
            names = asyncio.run(check(config))
            sys.stdout.write(f"config OK: {args.config or '<defaults>'}; plugins: "
                             f"{', '.join(names) or 'none'}\n")
            return 0
        asyncio.run(serve(config))
        return 0
    except (ConfigError, PluginError, AuthSetupError) as exc:
        sys.stderr.write(f"facerouter: {exc}\n")
        return 2
    except (OSError, EventStoreError) as exc:
        sys.stderr.write(f"facerouter: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
