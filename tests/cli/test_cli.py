"""The command line in process: what it writes, what it tells the person, how it refuses."""

from __future__ import annotations

import io
import json
import sys

import pytest

from monitor.cli import main
from monitor.pipeline import analyse_closeup
from monitor.progress import print_progress
from tests.courses import REPO, SHARED_DATA


def _closeup(tmp_path):
    """A real ACNE04 dev close-up (grade 2), copied next to a file that is no photo."""
    photos = sorted((SHARED_DATA / "acne04-dev").glob("levle2_*.jpg"))
    if not photos:
        pytest.skip("the ACNE04 dev photos (../shared/data/acne04-dev) are not here")
    path = tmp_path / "cheek.jpg"
    path.write_bytes(photos[0].read_bytes())
    return path


def test_lesions_writes_one_entry_a_file_and_refuses_what_is_no_photo(tmp_path, capsys):
    photo = _closeup(tmp_path)
    (tmp_path / "notes.jpg").write_bytes(b"this is not a photo")
    out = tmp_path / "out" / "lesions.json"
    assert main(["lesions", str(tmp_path), "--json", str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["schema"] == "monitor.lesions/1"
    by_file = {p["file"]: p for p in written["photos"]}
    assert set(by_file) == {photo.name, "notes.jpg"}
    cheek = by_file[photo.name]
    assert cheek["status"] == "ok" and cheek["lesion_count"] == len(cheek["lesions"])
    # What the command writes is the close-up reader's reading of the file, nothing lost.
    assert cheek == json.loads(json.dumps(analyse_closeup(photo)))
    assert cheek["lesion_count"] > 3  # a grade-2 face: many spots, read as many
    assert by_file["notes.jpg"]["status"] == "rejected"
    shown = capsys.readouterr()
    assert "notes.jpg: not used." in shown.out and "Traceback" not in shown.err
    assert f"cheek.jpg: {cheek['lesion_count']} spots" in shown.out
    assert f"Results written to {out}." in shown.out
    # Progress: a line a photo on stderr when it is not a terminal.
    assert "[1/2]" in shown.err and "[2/2]" in shown.err


def test_analyze_notes_missing_files_and_a_reference_it_could_not_use(tmp_path, capsys):
    out = tmp_path / "analysis.json"
    day0, day1 = REPO / "sample_images" / "day0.jpg", REPO / "sample_images" / "day1.jpg"
    code = main(["analyze", str(day0), str(day1), str(tmp_path / "gone.jpg"), "--quiet",
                 "--reference", str(tmp_path / "gone.jpg"), "--json", str(out)])
    assert code == 0
    shown = capsys.readouterr()
    assert "gone.jpg does not exist; it is listed as not used." in shown.err
    assert "the reference is day0.jpg instead" in shown.err
    analysis = json.loads(out.read_text(encoding="utf-8"))
    assert analysis["reference"] == "day0.jpg"
    gone = next(p for p in analysis["photos"] if p["file"] == "gone.jpg")
    assert gone["status"] != "ok" and gone["reason"]
    assert shown.err.count("[") == 0  # --quiet: no progress
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then moved into place


@pytest.mark.parametrize(("args", "message"), [
    (["--treatment-date", "2026-13-01"], "expected a date as YYYY-MM-DD, got '2026-13-01'"),
    (["--captured-at", "day0.jpg"], "expected FILE=YYYY-MM-DD[THH:MM], got 'day0.jpg'"),
    (["--captured-at", "day0.jpg=yesterday"], "expected a date/time as YYYY-MM-DD"),
])
def test_bad_arguments_are_refused_in_plain_words(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(["analyze", str(tmp_path), "--json", str(tmp_path / "a.json"), *args])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    print_progress(1, 2, "day0.jpg", "ok")
    print_progress(2, 2, "day1.jpg")
    assert log.getvalue() == "[1/2] day0.jpg: ok\n[2/2] day1.jpg\n"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    print_progress(1, 4, "day0.jpg", "ok")
    print_progress(4, 4, "day3.jpg", "ok")
    first, last = terminal.getvalue().split("\r")[1:]
    assert first.startswith("[######..................] 1/4 day0.jpg") and "\n" not in first
    assert last.startswith("[########################] 4/4 day3.jpg") and last.endswith("\n")


def test_the_demo_command_serves_the_repositorys_app():
    """``python -m monitor demo`` (the README's first command) becomes ``streamlit run`` on
    this file: it must be the repository's app, wherever the command's module sits."""
    from monitor.cli.clinic import app_file

    assert app_file() == REPO / "app.py"
    assert app_file().is_file()
