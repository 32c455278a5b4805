"""``facerouter`` console script (the service arrives in its own issue)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PORT = 18820


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facerouter")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--check-config", action="store_true")
    parser.parse_args(argv)
    sys.stderr.write("facerouter: not built yet (see its issue)\n")
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
