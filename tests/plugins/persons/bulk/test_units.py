"""The bulk tools' parts on their own: answers to outcomes, input reading, progress, photo check."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from facestack.stack.bulk.importer import CHECK_SIDE, load_photo, prepare_photo
from facestack.stack.bulk.items import ItemsError, read_items
from facestack.stack.bulk.outcome import Fatal, from_answer
from facestack.stack.bulk.progress import Progress, format_eta

PID = "6f1c1f0e-8a1b-4a43-9a55-2b1d2b0c7e10"


@pytest.mark.parametrize("status, body, want", [
    (201, {"pid": PID, "entry": {"result": "new"}}, ("enrolled", None)),
    (200, {"pid": PID, "entry": {"result": "reinit"}}, ("enrolled", None)),
    (409, {"code": "CONFLICT", "pid": PID, "reason": "matches"}, ("refused", "match")),
    (400, {"code": "BAD_PARAM", "param": "image", "reason": "no face found in image"},
     ("refused", "no_face")),
    (400, {"code": "BAD_PARAM", "param": "image",
           "reason": "the face is 7326 px^2, below the source's manual_create_facesize_threshold"},
     ("refused", "too_small")),
    (400, {"code": "BAD_PARAM", "param": "image", "reason": "the face is too blurred"},
     ("refused", "too_blurred")),
    (400, {"code": "BAD_PARAM", "param": "image", "reason": "image is not a JPEG, PNG or WEBP"},
     ("refused", "unreadable")),
    (400, {"code": "BAD_PARAM", "param": "image", "reason": "2 faces on the photo: several"},
     ("refused", "several_faces")),
    (413, {"code": "BAD_PARAM", "param": "image", "reason": "larger than 20971520 bytes"},
     ("refused", "refused")),
    (503, {"code": "SERVICE_UNAVAILABLE", "reason": "sfapi is unavailable"}, ("error", None)),
    (429, b"slow down", ("error", None)),
    (502, b"<html>bad gateway</html>", ("error", None)),
])
def test_outcome_of_answers(status: int, body: Any, want: tuple[str, str | None]) -> None:
    out = from_answer(status, body)
    assert (out.status, out.reason) == want
    if status == 409:
        assert out.matched_pid == PID
    if out.status == "enrolled":
        assert out.pid == PID


@pytest.mark.parametrize("status, body", [
    (401, {"code": "UNAUTHORIZED", "reason": "token"}),
    (403, {"code": "FORBIDDEN", "reason": "read-only"}),
    (404, b"not found"),
    (400, {"code": "BAD_PARAM", "param": "source", "reason": "unknown source 'x'"}),
    (400, {"code": "BAD_PARAM", "param": "on_match", "reason": "unknown query argument"}),
])
def test_run_wide_refusals_stop_the_run(status: int, body: Any) -> None:
    with pytest.raises(Fatal):
        from_answer(status, body)


def test_items_from_folder_and_csv(tmp_path: Path) -> None:
    (tmp_path / "f" / "Ann").mkdir(parents=True)
    (tmp_path / "f" / "Ann" / "b.jpg").write_bytes(b"x")
    (tmp_path / "f" / "Ann" / "a.png").write_bytes(b"x")
    (tmp_path / "f" / "Bob Lee.jpeg").write_bytes(b"x")
    (tmp_path / "f" / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "f" / "readme.md").write_text("x")
    items = read_items(tmp_path / "f")
    assert [(i.name, [Path(p).name for p in i.photos]) for i in items] == [
        ("Ann", ["a.png", "b.jpg"]), ("Bob Lee", ["Bob Lee.jpeg"])]
    (tmp_path / "l.csv").write_text("Name,URL,team\nAnn,https://h/a.jpg,x\nAnn,a2.jpg,y\n"
                                    "Cy,/abs/c.jpg,z\n", encoding="utf-8")
    items = read_items(tmp_path / "l.csv")
    assert [(i.name, i.photos, i.meta) for i in items] == [
        ("Ann", ["https://h/a.jpg", str(tmp_path / "a2.jpg")], {"team": "x"}),
        ("Cy", ["/abs/c.jpg"], {"team": "z"})]


@pytest.mark.parametrize("text, message", [
    ("photo,team\na.jpg,x\n", "'name' column"),
    ("name,team\nAnn,x\n", "photo column"),
    ("name,photo\n,a.jpg\n", "empty person name"),
    ("name,photo\nAnn,\n", "empty 'photo'"),
])
def test_bad_csv_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(ItemsError, match=message):
        read_items(tmp_path / "l.csv")


def test_progress_bar_on_a_terminal_and_lines_otherwise(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(10, skipped=2, stream=out, tty=True, clock=lambda: now[0])
    for n in range(4):
        now[0] += 1.0
        bar.update(f"p{n}", "enrolled" if n % 2 else "refused", None, "")
    bar.finish()
    text = out.getvalue()
    assert "\r[" in text and "6/10 (60%)" in text and "1.00/s" in text
    assert "ETA 0:00:04" in text and "skipped 2" in text and text.endswith("\n")
    caplog.set_level("INFO")
    plain = Progress(3, stream=io.StringIO(), tty=False, interval_s=0.0, clock=lambda: now[0])
    plain.update("Ann", "refused", "no_face", "no face found")
    assert "Ann: refused (no_face: no face found)" in caplog.text
    assert format_eta(None) == "?" and format_eta(3725) == "1:02:05"


def test_photo_check() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(buf, "BMP")
    converted = load_photo(buf.getvalue())
    assert converted[:2] == b"\xff\xd8"  # BMP is sent as JPEG
    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, "PNG")
    assert load_photo(buf.getvalue()) == buf.getvalue()
    for bad in (b"", b"\xff\xd8\xff\xe0garbage", buf.getvalue()[:60]):
        with pytest.raises(ValueError):
            load_photo(bad)


def test_the_several_faces_check_sees_a_scaled_copy() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1000, 800), (90, 90, 90)).save(buf, "JPEG")
    send, check, scale = prepare_photo(buf.getvalue(), 25000.0)
    assert send == buf.getvalue() and check is not None
    assert scale == pytest.approx(CHECK_SIDE / 25000 ** 0.5, abs=0.01)  # a 158 px face -> 100 px
    with Image.open(io.BytesIO(check)) as img:
        assert img.width == round(1000 * scale)
    assert prepare_photo(buf.getvalue(), 8000.0)[1:] == (buf.getvalue(), 1.0)  # no gain: as is
    assert prepare_photo(buf.getvalue(), 0.0)[2] == 1.0
    assert prepare_photo(buf.getvalue(), None)[1] is None
