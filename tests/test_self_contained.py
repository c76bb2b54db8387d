"""The repository never cites a file outside itself (docs/design.md is the reference the code
cites), and every Markdown link and ``*.md`` path it mentions exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what the repository ships and cites from; recorded run outputs (benchmarks/results) are data
SOURCES = ("lom_pyro", "docs", "benchmarks", "examples", "tests", "README.md", "pyproject.toml", ".ci")
SKIP = ("benchmarks/results/",)
SUFFIXES = {".py", ".md", ".toml", ".sh", ".txt", ".cfg", ".ini", ".yaml", ".yml", ""}
#: names of files that live beside this repository, never in it
OUTSIDE = re.compile(r"pyro-notes|anchors-(?:models|data)|\.\./shared|(?<![\w.])shared/|\bstyle\.md"
                     r"|latent_object_models_paper|/work/")
MD_PATH = re.compile(r"(?<![\w/.-])((?:\.\./|[\w-]+/)*[\w-]+\.md)\b")
MD_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
#: Markdown files that the programs write into a run folder, named in the docs
WRITTEN = {"eval.md"}


def text_files() -> list[Path]:
    files = []
    for name in SOURCES:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in candidates:
            rel = p.relative_to(ROOT).as_posix()
            if p.suffix in SUFFIXES and "__pycache__" not in rel and not rel.startswith(SKIP):
                files.append(p)
    return files


def broken_citations(text: str, where: Path) -> list[str]:
    """What ``text`` (the contents of ``where``) cites that the repository does not hold."""
    found = [f"outside file {m.group(0)!r}" for m in OUTSIDE.finditer(text)]
    cited = {m.group(1) for m in MD_PATH.finditer(text)} - WRITTEN
    if where.suffix == ".md":
        cited |= {m.group(1) for m in MD_LINK.finditer(text) if "://" not in m.group(1)
                  and not m.group(1).startswith("mailto:")}
    for ref in sorted(cited):
        if not ((ROOT / ref).exists() or (where.parent / ref).exists()):
            found.append(f"missing {ref!r}")
    return found


def test_the_check_catches_an_outside_citation_and_a_dangling_link():
    here = ROOT / "lom_pyro" / "ops.py"
    assert broken_citations("see design.md §4 and pyro-notes", here) == [
        "outside file 'pyro-notes'", "missing 'design.md'"]
    assert broken_citations("see docs/design.md §4", here) == []
    assert broken_citations("[x](nowhere.png)", ROOT / "docs" / "model.md") == ["missing 'nowhere.png'"]
    assert broken_citations("[x](design.md#1)", ROOT / "docs" / "model.md") == []


def test_no_file_cites_outside_the_repository():
    files = [p for p in text_files() if p != Path(__file__).resolve()]  # this one names what it looks for
    assert len(files) > 100
    broken = {p.relative_to(ROOT).as_posix(): found for p in files
              if (found := broken_citations(p.read_text(encoding="utf-8"), p))}
    assert broken == {}
