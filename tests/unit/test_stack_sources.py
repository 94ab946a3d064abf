"""The database's pinned sources are checked before anything is built from them: a tarball
by its SHA-256, a download by the digest of its files (no network here: the download is
handed in as bytes)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from medcard.stack import documentdb
from medcard.stack.documentdb import SOURCES, Source, fetch_sources, sources_folder, tree_digest
from medcard.stack.process import StackError

FILES = {"Makefile": b"all:\n", "src/ext.c": b"int x;\n", "tests/big.c": b"// not built\n"}


def tarball(top: str, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def pinned(tmp_path: Path, data: bytes, checked: tuple[str, ...] = ("",)) -> Source:
    tree = tmp_path / "reference"
    for name, content in FILES.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(content)
    return Source("ext", "someone/ext", "v1", "0" * 40, "MIT", "ext-v1.tar.gz",
                  hashlib.sha256(data).hexdigest(), tree_digest(tree, checked), checked)


@pytest.fixture
def one_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Source, bytes]:
    data = tarball("ext", FILES)
    source = pinned(tmp_path, data)
    monkeypatch.setattr(documentdb, "SOURCES", (source,))
    return source, data


def test_a_tarball_with_its_pinned_checksum_is_extracted(one_source: tuple[Source, bytes], tmp_path: Path) -> None:
    source, data = one_source
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / source.tarball).write_bytes(data)
    fetch_sources(tmp_path / "out", tmp_path / "folder")
    assert (tmp_path / "out" / "ext" / "src" / "ext.c").read_bytes() == b"int x;\n"


def test_a_tarball_that_differs_from_the_pin_is_refused(one_source: tuple[Source, bytes], tmp_path: Path) -> None:
    source, _ = one_source
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / source.tarball).write_bytes(tarball("ext", {**FILES, "src/ext.c": b"evil();\n"}))
    with pytest.raises(StackError, match="SHA-256 differs from the pinned"):
        fetch_sources(tmp_path / "out", tmp_path / "folder")
    assert not (tmp_path / "out" / "ext").exists()


def test_a_missing_tarball_is_named(one_source: tuple[Source, bytes], tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(StackError, match=r"ext-v1\.tar\.gz is missing \(the pinned ext v1 source tarball\)"):
        fetch_sources(tmp_path / "out", tmp_path / "folder")


class Answer(io.BytesIO):
    def __enter__(self) -> Answer:
        return self


@pytest.mark.parametrize("files, accepted", [
    (FILES, True),
    (dict(reversed(FILES.items())), True),  # another archive of the same files
    ({**FILES, "src/ext.c": b"evil();\n"}, False),
])
def test_a_download_is_checked_by_its_files(monkeypatch: pytest.MonkeyPatch, one_source: tuple[Source, bytes],
                                            tmp_path: Path, files: dict[str, bytes], accepted: bool) -> None:
    _source, _ = one_source
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> Answer:
        asked.append(url)
        return Answer(tarball("ext-0000", files))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    if accepted:
        fetch_sources(tmp_path / "out", None)
        assert (tmp_path / "out" / "ext" / "Makefile").is_file()
    else:
        with pytest.raises(StackError, match="the files differ from the pinned ext v1"):
            fetch_sources(tmp_path / "out", None)
    assert asked == [f"https://github.com/someone/ext/archive/{'0' * 40}.tar.gz"]


def test_the_digest_covers_only_the_checked_parts(tmp_path: Path) -> None:
    """mongo-c-driver's pinned tarball leaves its test folders out: the digest covers the
    parts the build reads, so a full download of the same commit passes."""
    for name, data in {**FILES, "extra/README": b"more\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    checked = ("Makefile", "src")
    before = tree_digest(tmp_path, checked)
    (tmp_path / "tests" / "big.c").write_bytes(b"changed\n")
    assert tree_digest(tmp_path, checked) == before
    (tmp_path / "src" / "ext.c").write_bytes(b"changed\n")
    assert tree_digest(tmp_path, checked) != before


def test_the_sources_folder_is_the_setting_else_the_one_beside_the_checkout(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    checkout = tmp_path / "main"
    checkout.mkdir()
    monkeypatch.delenv("MEDCARD_DB_SOURCES", raising=False)
    assert sources_folder(checkout) is None
    (tmp_path / "shared" / "db-sources").mkdir(parents=True)
    assert sources_folder(checkout) == tmp_path / "shared" / "db-sources"
    monkeypatch.setenv("MEDCARD_DB_SOURCES", str(tmp_path / "elsewhere"))
    with pytest.raises(StackError, match="is not a folder"):
        sources_folder(checkout)


def test_every_pin_names_a_full_commit_and_a_checksum() -> None:
    for source in SOURCES:
        assert len(source.commit) == 40 and int(source.commit, 16) >= 0, source.name
        assert len(source.sha256) == len(source.tree) == 64, source.name
        assert replace(source).url.endswith(f"/archive/{source.commit}.tar.gz")
