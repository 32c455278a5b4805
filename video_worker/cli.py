"""``video-worker`` console script: run camera jobs, or check a config.

``video-worker --config config/video_worker.yaml [--host H] [--port P] [--log-level L]``;
``--check-config`` validates the file (every job's settings included) and exits. SIGTERM and
SIGINT stop the worker cleanly: live tracks are posted or spooled, the spool is kept for the next
start.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from video_worker.config import DEFAULT_PORT, WorkerConfig, load
from video_worker.errors import ConfigError, VideoWorkerError

log = logging.getLogger("video_worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-worker",
                                     description="Camera jobs in, best faces out to facerouter")
    parser.add_argument("--config", type=Path, help="YAML config (default: embedded defaults)")
    parser.add_argument("--host", help="bind address of the job API (overrides config)")
    parser.add_argument("--port", type=int, help=f"port of the job API (overrides config; default {DEFAULT_PORT})")
    parser.add_argument("--check-config", action="store_true", help="validate the config, then exit")
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve(cfg: WorkerConfig) -> None:
    """Run until SIGTERM or SIGINT, then shut down."""
    from video_worker.app import Worker

    worker = Worker(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await worker.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load(args.config, {"host": args.host, "port": args.port})
        if args.check_config:
            from video_worker.detector import check_detector

            check_detector(cfg.models)
            sys.stdout.write(f"config OK: {args.config or '<defaults>'}; {len(cfg.jobs)} jobs\n")
            return 0
        asyncio.run(serve(cfg))
        return 0
    except ConfigError as exc:
        sys.stderr.write(f"video-worker: {exc}\n")
        return 2
    except (VideoWorkerError, OSError) as exc:
        sys.stderr.write(f"video-worker: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
