"""How a command line ends: one line on stderr and an exit status (0 done, 1 a failure, 2 a bad
config), never a traceback for an error the project raises on purpose."""
from __future__ import annotations

import sys
from typing import Callable

from facestack.core.errors import ConfigError, FacestackError

__all__ = ["exit_status", "report_check"]


def exit_status(prog: str, command: Callable[[], int],
                failures: tuple[type[BaseException], ...] = (FacestackError,), *,
                name_config: bool = False) -> int:
    """Run ``command``; a :class:`ConfigError` prints its ``file:line`` message (after ``prog:``
    with ``name_config``) and gives 2, one of ``failures`` prints ``prog: message`` and gives 1."""
    try:
        return command()
    except ConfigError as exc:
        sys.stderr.write(f"{prog}: {exc}\n" if name_config else f"{exc}\n")
        return 2
    except failures as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1


def report_check(problems: list[str], what: str) -> int:
    """The end of a ``check`` command: each problem on a line of stdout, then ``what`` OK or
    incomplete; 0 when there are none, 1 otherwise."""
    for problem in problems:
        sys.stdout.write(f"{problem}\n")
    sys.stdout.write(f"{what} OK\n" if not problems else f"{what} incomplete\n")
    return 0 if not problems else 1
