"""Hostile submissions: each is refused with a clear message, and nothing lands outside the board."""

import io
import json
import os
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from conftest import snapshot

from knowgen.leaderboard import SubmissionError, SubmissionLimits, add, validate
from knowgen.leaderboard.seed import write_submission


def _errors(report):
    return "\n".join(str(p) for p in report.errors)


def _add_refused(sub, tmp_path, kg_bench, **kwargs):
    """add() must refuse ``sub``, write nothing outside the board and leave the board empty."""
    board = tmp_path / "board"
    before = snapshot(tmp_path, skip=board)
    with pytest.raises(SubmissionError) as info:
        add(sub, board, benchmarks=kg_bench["benchmarks"], **kwargs)
    assert snapshot(tmp_path, skip=board) == before
    assert not any((board / "entries").iterdir())
    assert [p.name for p in board.iterdir()] == ["entries"]  # temporary folders are gone
    return info.value.report


def _zip_of(folder: Path, dest: Path, extra: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
        for name, data in extra.items():
            zf.writestr(name, data)
    return dest


def _edit_output(sub: Path, index: int, value: str) -> None:
    lines = (sub / "samples.jsonl").read_text().splitlines()
    rec = json.loads(lines[index])
    rec["output_path"] = value
    lines[index] = json.dumps(rec)
    (sub / "samples.jsonl").write_text("\n".join(lines) + "\n")
    results = json.loads((sub / "results.json").read_text())
    results[index]["output_path"] = value
    (sub / "results.json").write_text(json.dumps(results))


def test_path_traversal_is_refused(make_submission, kg_bench, tmp_path):
    secret = tmp_path / "outside.png"
    sub = make_submission()
    secret.write_bytes((sub / "images" / "kg-0000.png").read_bytes())
    _edit_output(sub, 0, "../outside.png")
    report = _add_refused(sub, tmp_path, kg_bench)
    assert "output_path: path '../outside.png' holds a '..' part" in _errors(report)


def test_absolute_path_is_refused(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    target = str((sub / "images" / "kg-0001.png").resolve())
    _edit_output(sub, 1, target)
    report = _add_refused(sub, tmp_path, kg_bench)
    assert f"path {target!r} is an absolute path" in _errors(report)


def test_symlink_out_of_the_folder_is_refused(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes((sub / "images" / "kg-0002.png").read_bytes())
    (sub / "images" / "kg-0002.png").unlink()
    os.symlink(outside, sub / "images" / "kg-0002.png")
    os.symlink("/etc/hostname", sub / "results.json.bak")
    report = _add_refused(sub, tmp_path, kg_bench)
    text = _errors(report)
    assert "images/kg-0002.png: is a link pointing outside the submission" in text
    assert "results.json.bak: is a link pointing outside the submission" in text
    assert "path 'images/kg-0002.png' leads outside the submission" in text


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_archive_members_escaping_the_target_are_not_unpacked(make_submission, kg_bench,
                                                               tmp_path):
    sub = make_submission()
    escape = tmp_path / "escaped.txt"
    evil = {"../escaped.txt": b"x", "../../escaped.txt": b"x", f"/{escape}": b"x",
            "images\\..\\..\\escaped.txt": b"x", "results.json": b"[]"}
    archive = _zip_of(sub, tmp_path / "evil.zip", evil)
    with zipfile.ZipFile(archive, "a") as zf:
        link = zipfile.ZipInfo("images/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    report = _add_refused(archive, tmp_path, kg_bench)
    assert not escape.exists()
    text = _errors(report)
    assert "archive member 'images/link.png': is a link" in text
    assert "archive member '../escaped.txt': holds a '..' part" in text
    assert f"archive member '/{escape}': is an absolute path" in text
    assert "holds a backslash" in text
    assert "archive member 'results.json': appears twice" in text


def test_tar_links_and_escapes_are_refused(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    archive = tmp_path / "evil.tar.gz"
    write_submission(sub, archive, meta=__import__("yaml").safe_load(
        (sub / "submission.yaml").read_text()))
    with tarfile.open(archive, "r:gz") as tf:
        members = [(m, tf.extractfile(m).read() if m.isreg() else None) for m in tf]
    with tarfile.open(archive, "w:gz") as tf:
        for m, data in members:
            if m.name == "images/kg-0003.png":
                link = tarfile.TarInfo(m.name)
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tf.addfile(link)
                continue
            tf.addfile(m, io.BytesIO(data) if data is not None else None)
        hard = tarfile.TarInfo("images/hard.png")
        hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tf.addfile(hard)
        up = tarfile.TarInfo("../up.txt")
        up.size = 1
        tf.addfile(up, io.BytesIO(b"x"))
    report = _add_refused(archive, tmp_path, kg_bench)
    text = _errors(report)
    assert "archive member 'images/kg-0003.png': is a link" in text
    assert "archive member 'images/hard.png': is a link" in text
    assert "archive member '../up.txt': holds a '..' part" in text
    assert "file 'images/kg-0003.png' does not exist" in text
    assert not (tmp_path / "up.txt").exists()


def test_zip_bomb_is_stopped(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    archive = _zip_of(sub, tmp_path / "bomb.zip", {})
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("padding.bin", "w", force_zip64=True) as fh:
        for _ in range(64):
            fh.write(bytes(1 << 20))
    assert archive.stat().st_size < 2 * 1024**2
    start = time.perf_counter()
    report = _add_refused(archive, tmp_path, kg_bench)
    assert time.perf_counter() - start < 5
    assert "times its packed size" in _errors(report) and "zip bomb?" in _errors(report)


def test_member_count_and_byte_caps(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    archive = _zip_of(sub, tmp_path / "many.zip", {f"junk/{i}.txt": b"" for i in range(50)})
    report = validate(archive, kg_bench["benchmarks"], SubmissionLimits(max_members=40))
    assert "members; the cap is 40" in _errors(report)
    report = validate(archive, kg_bench["benchmarks"], SubmissionLimits(max_total_bytes=20_000))
    assert "the cap is 20,000 (zip bomb?)" in _errors(report)


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (20_000, 10)])
def test_decompression_bomb_png_is_not_decoded(make_submission, kg_bench, tmp_path, width,
                                               height):
    sub = make_submission()
    (sub / "images" / "kg-0004.png").write_bytes(_png_header(width, height))
    start = time.perf_counter()
    report = _add_refused(sub, tmp_path, kg_bench)
    assert time.perf_counter() - start < 5
    assert f"claims {width} x {height} pixels" in _errors(report)


def test_duplicate_and_missing_ids_refuse_the_archive(make_submission, kg_bench, tmp_path):
    sub = make_submission(edit=lambda s: s.__setitem__(5, dict(s[4])))
    archive = _zip_of(sub, tmp_path / "dups.zip", {})
    report = _add_refused(archive, tmp_path, kg_bench)
    text = _errors(report)
    assert "id 'kg-0004' appears 2 times" in text and "id 'kg-0005' of knowgen" in text


def test_out_of_scale_scores_refuse_the_entry(make_submission, kg_bench, tmp_path):
    sub = make_submission(edit=lambda s: s[0]["image_judgement"].update(aesthetics=0.25))
    report = _add_refused(sub, tmp_path, kg_bench)
    assert "image_judgement.aesthetics: 0.25 is off the rubric's scale" in _errors(report)


def test_tampered_total_is_corrected_not_trusted(make_submission, kg_bench, tmp_path):
    sub = make_submission(edit=lambda s: [r["image_judgement"].update(overall=1.0) for r in s])
    honest = json.loads((sub / "summary.json").read_text())["k_score"]
    summary = json.loads((sub / "summary.json").read_text())
    summary["k_score"] = 100.0
    (sub / "summary.json").write_text(json.dumps(summary))
    board = tmp_path / "board"
    before = snapshot(tmp_path, skip=board)
    entry = add(_zip_of(sub, tmp_path / "tampered.zip", {}), board,
                benchmarks=kg_bench["benchmarks"])
    after = snapshot(tmp_path, skip=board)
    assert set(after) - set(before) == {"tampered.zip"}  # the archive made above, nothing else
    assert entry["scores"]["headline"] == honest < 100.0
    assert any(c.startswith("summary.json: k_score: submitted 100.0") for c in entry["corrections"])
    assert sum("image_judgement.overall" in c for c in entry["corrections"]) == 5  # one was 1.0
    stored = json.loads((board / "entries" / entry["entry_id"] / "entry.json").read_text())
    assert stored["scores"]["headline"] == honest


@pytest.mark.parametrize("name", ["junk.zip", "junk.tar.gz"])
def test_unreadable_archive_is_refused(kg_bench, tmp_path, name):
    archive = tmp_path / name
    archive.write_bytes(b"PK\x03\x04 this is not really an archive" * 10)
    report = _add_refused(archive, tmp_path, kg_bench)
    assert f"{name}: cannot be read as an archive" in _errors(report)


def test_archive_with_one_top_folder_is_accepted(make_submission, kg_bench, tmp_path):
    sub = make_submission()
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(sub.rglob("*")):
            zf.write(p, f"my-run/{p.relative_to(sub).as_posix()}")
    report = validate(archive, kg_bench["benchmarks"])
    assert report.ok, report.text()
