"""How the command lines end: ``check`` reports and exit statuses (facestack.core.commands)."""
from __future__ import annotations

import pytest

from facestack.core.commands import exit_status, report_check
from facestack.core.errors import ConfigError, FacestackError


def test_report_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_check([], "model pack") == 0
    assert capsys.readouterr().out == "model pack OK\n"
    assert report_check(["a is missing", "b is damaged"], "sample data") == 1
    assert capsys.readouterr().out == "a is missing\nb is damaged\nsample data incomplete\n"


def test_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    def fails(exc: BaseException) -> int:
        raise exc

    assert exit_status("x", lambda: 0) == 0
    assert exit_status("x", lambda: fails(FacestackError("boom"))) == 1
    assert capsys.readouterr().err == "x: boom\n"
    assert exit_status("x", lambda: fails(ConfigError("cfg.yaml:3: bad"))) == 2
    assert capsys.readouterr().err == "cfg.yaml:3: bad\n"
