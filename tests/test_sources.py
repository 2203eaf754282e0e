"""Tests for qa.ingest.sources: reading .txt/.md/.html files and collecting folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.ingest.errors import SourceError
from qa.ingest.sources import SUFFIXES, collect_sources, html_to_text, read_source


def test_suffixes() -> None:
    assert SUFFIXES == (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
    assert issubclass(SourceError, ValueError)


def test_txt_read_as_is_with_newlines_normalised(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes("\ufeffHello  world.\r\nSecond line.\rThird — ünïcode 日本.\n".encode())
    assert read_source(f) == "Hello  world.\nSecond line.\nThird — ünïcode 日本.\n"
    assert read_source(str(f)) == read_source(f)


def test_markdown_kept_verbatim(tmp_path: Path) -> None:
    f = tmp_path / "notes.md"
    f.write_text("# Title\n\nSome *text* & <b>tags</b>.\n", encoding="utf-8")
    assert read_source(f) == "# Title\n\nSome *text* & <b>tags</b>.\n"


def test_html_visible_text(tmp_path: Path) -> None:
    f = tmp_path / "page.html"
    f.write_text(
        "<html><head><title>T</title><style>p { color: red }</style></head><body>"
        "<h1>Fish &amp; chips</h1><p>First   para.<br>Same &lt;para&gt; &#233;t&eacute;.</p>"
        "<script>var x = '<p>hidden</p>';</script><ul><li>one</li><li>two</li></ul>"
        "<div>Last <i>words</i>.</div></body></html>",
        encoding="utf-8",
    )
    text = read_source(f)
    assert text == "Fish & chips\n\nFirst para.\nSame <para> été.\n\none\ntwo\n\nLast words."
    assert "hidden" not in text and "color" not in text


def test_html_to_text_requires_str() -> None:
    with pytest.raises(TypeError):
        html_to_text(b"<p>x</p>")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [("empty.txt", b"", "empty"), ("blank.md", b" \n\t\n", "empty"),
     ("latin1.txt", "café".encode("latin-1"), "UTF-8"), ("only-script.html", b"<script>x</script>", "empty")],
)
def test_unreadable_files_name_the_file(tmp_path: Path, name: str, content: bytes, why: str) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(SourceError, match=why) as info:
        read_source(f)
    assert name in str(info.value)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.txt"):
        read_source(tmp_path / "nope.txt")
    with pytest.raises(SourceError, match="not a file"):
        read_source(tmp_path)
    with pytest.raises(TypeError):
        read_source(3)  # type: ignore[arg-type]


def _tree(root: Path) -> None:
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / ".hidden").mkdir()
    (root / "docs" / "b.txt").write_text("Bee.", encoding="utf-8")
    (root / "docs" / "a.md").write_text("Ay.", encoding="utf-8")
    (root / "docs" / "sub" / "c.HTML").write_text("<p>Sea.</p>", encoding="utf-8")
    (root / "docs" / "sub" / "d.png").write_bytes(b"\x89PNG")
    (root / "docs" / ".secret.txt").write_text("hidden", encoding="utf-8")
    (root / "docs" / ".hidden" / "e.txt").write_text("hidden", encoding="utf-8")


def test_collect_walks_folders_sorted_relative_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    sources = collect_sources(["docs"])
    assert list(sources) == ["docs/a.md", "docs/b.txt", "docs/sub/c.HTML"]
    assert sources["docs/sub/c.HTML"] == "Sea."
    # a file given twice (directly and through its folder) appears once
    again = collect_sources([tmp_path / "docs" / "b.txt", "docs"])
    assert list(again) == ["docs/b.txt", "docs/a.md", "docs/sub/c.HTML"]


def test_collect_outside_cwd_uses_absolute_posix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sources = collect_sources([str(tmp_path / "docs" / "a.md")])
    assert list(sources) == [(tmp_path / "docs" / "a.md").resolve().as_posix()]


def test_collect_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no source files"):
        collect_sources([tmp_path / "empty"])
    with pytest.raises(SourceError, match="missing"):
        collect_sources([tmp_path / "missing"])
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(SourceError, match="x.pdf"):
        collect_sources([tmp_path / "x.pdf"])
    with pytest.raises(TypeError):
        collect_sources(str(tmp_path))  # type: ignore[arg-type]


def test_seed_article_reads() -> None:
    seed = Path(__file__).resolve().parent.parent / "seeds" / "article.txt"
    text = read_source(seed)
    assert text == seed.read_bytes().decode("utf-8").replace("\r\n", "\n") and text.strip()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x00" * 5000, "binary data"),
        (bytes(range(1, 9)) * 200 + b" some words", "binary data"),
        (b"1234 5678 ... 42\n", "no words"),
    ],
)
def test_binary_looking_files_are_refused_with_their_name(tmp_path: Path, content: bytes, why: str) -> None:
    f = tmp_path / "notes.txt"
    f.write_bytes(content)
    with pytest.raises(SourceError, match=why) as err:
        read_source(f)
    assert "notes.txt" in str(err.value)


def test_text_with_a_few_control_characters_is_still_text(tmp_path: Path) -> None:
    f = tmp_path / "log.txt"
    f.write_text("The mill opened in 1990.\x1b[1m Bold\x1b[0m words follow here. " * 20, encoding="utf-8")
    assert "mill" in read_source(f)


def test_an_empty_path_is_refused_not_read_as_the_current_folder() -> None:
    with pytest.raises(SourceError, match="empty path"):
        collect_sources([""])
    with pytest.raises(SourceError, match="empty path"):
        collect_sources(["  "])


def test_files_a_folder_holds_that_cannot_be_read_are_named_not_skipped_silently(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("Alpha is here.")
    (tmp_path / "notes" / "slides.pptx").write_bytes(b"PK\x03\x04\x00\x01binary")
    (tmp_path / "notes" / ".hidden.pptx").write_bytes(b"PK")
    said: list[str] = []
    sources = collect_sources([tmp_path / "notes"], log=said.append)
    assert [Path(n).name for n in sources] == ["a.txt"]
    assert len(said) == 1 and "Skipped 1 file(s)" in said[0] and "slides.pptx" in said[0]
    assert ".hidden" not in said[0]


def test_an_html_news_page_gives_its_article_without_menus_and_footer(tmp_path: Path) -> None:
    article = ["The harbour board opened the new lighthouse on Kerrow Point on Monday, after two years "
               "of work and a long argument about its cost.",
               "Ann Tullis, who kept the old light for thirty years, switched the lamp on in front of a "
               "crowd of several hundred people from the town.",
               "The board said the lamp can be seen from twenty miles out to sea in clear weather."]
    menu = "".join(f"<li><a href='/{w}'>{w.title()} section</a></li>" for w in ("news", "sport", "weather"))
    body = "".join(f"<p>{p}</p>" for p in article)
    f = tmp_path / "story.html"
    f.write_text(f"<html><head><title>Lighthouse</title></head><body><nav><ul>{menu}</ul></nav>"
                 "<div class='cookie'>We use cookies. Accept all cookies</div>"
                 f"<main><article><h1>New light</h1>{body}</article></main>"
                 "<footer>Copyright Kerrow Gazette. All rights reserved. Contact us</footer></body></html>",
                 encoding="utf-8")
    text = read_source(f)
    assert all(p in text for p in article)
    assert "Sport section" not in text and "All rights reserved" not in text
