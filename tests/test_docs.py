"""Citations in the repository resolve: every `docs/FILE.md` and `docs/FILE.md#anchor` reference
names a file and a heading that exist, relative Markdown links point at files (and headings) that
exist, and nothing cites numbered sections of design notes that are not part of the repository
("spec" and a section sign: they mean nothing to a reader of a clone).

Anchors are GitHub's: the heading text (inline code, links and emphasis rendered), lowercased,
punctuation other than hyphens and underscores dropped, spaces turned into hyphens, and `-1`,
`-2`, ... appended to repeated headings.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = "tests/test_docs.py"

SECTION = "\u00a7"  # the section sign, spelled out so that this file does not match itself
PRIVATE_CITATION = re.compile(rf"(?i)\bspec\s*{SECTION}|{SECTION}\s*\d")
DOCS_REFERENCE = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(?:#([\w-]+))?")
MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
SKIP_FIXTURE_SUFFIXES = (".npz", ".pkl", ".json")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's Markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images -> their text
    text = text.replace("`", "")
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers, not snake_case
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of every ATX heading outside fenced code, with GitHub's `-N` suffixes."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    fence = None
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if match:
            marker = match[1]
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is not None:
            continue
        match = HEADING.match(line)
        if match:
            base = slug(match[2])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


@cache
def tracked_files() -> tuple[str, ...]:
    """The repository's files: tracked ones, and new ones that git does not ignore."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the repository's files are unknown")
    return tuple(sorted({p for p in out.decode().split("\0") if p}))


def is_checked(path: str) -> bool:
    return not (path.startswith("tests/fixtures/") and path.endswith(SKIP_FIXTURE_SUFFIXES))


@cache
def text_files() -> dict[str, str]:
    """The repository's text files (binaries, fixture data and deleted files skipped)."""
    texts = {}
    for path in tracked_files():
        if not is_checked(path):
            continue
        try:
            data = (ROOT / path).read_bytes()
        except OSError:  # deleted in the work tree but still tracked
            continue
        if b"\0" in data[:8192]:
            continue
        try:
            texts[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def anchors_of(path: str) -> set[str] | None:
    """Anchors of the Markdown file at repository path `path`, None if it does not exist."""
    file = ROOT / path
    if not file.is_file():
        return None
    return anchors(file.read_text(encoding="utf-8"))


def exists(path: str) -> bool:
    return (ROOT / path).exists()


def resolve_link(path: str, link: str) -> str | None:
    """Repository path of relative link `link` in the file at `path`; None if it leaves the
    repository."""
    parts: list[str] = []
    for part in PurePosixPath(path).parent.joinpath(link).as_posix().split("/"):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def broken_references(path: str, text: str, anchors_of=anchors_of, exists=exists) -> list[str]:
    """One message per reference in `text` (the file at repository path `path`) that does not
    resolve: `docs/FILE.md` and `docs/FILE.md#anchor` anywhere, and in Markdown files the
    relative links (`[x](../README.md#set-up)`, `[x](#evaluate)`)."""
    problems = []
    markdown = path.endswith(".md")
    for line_no, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{line_no}"
        links = list(MD_LINK.finditer(line)) if markdown else []
        for match in DOCS_REFERENCE.finditer(line):
            if any(link.start(1) <= match.start() < link.end(1) for link in links):
                continue  # a link target: resolved below, from the linking file's folder
            problems += _check(where, match[1], match[2], anchors_of)
        for match in links:
            link = match[1]
            if re.match(r"[a-z][a-z0-9+.-]*:", link, re.I):  # http:, mailto:, ...
                continue
            target, _, anchor = link.partition("#")
            if not target:
                problems += _check(where, path, anchor, anchors_of)
            elif target.endswith(".md"):
                problems += _check(where, resolve_link(path, target) or target, anchor, anchors_of)
            elif not exists(resolve_link(path, target) or target):
                problems.append(f"{where}: {link} does not exist")
    return problems


def _check(where: str, target: str, anchor: str | None, anchors_of) -> list[str]:
    found = anchors_of(target)
    if found is None:
        return [f"{where}: {target} does not exist"]
    if anchor and anchor not in found:
        return [f"{where}: {target} has no heading with anchor #{anchor}"]
    return []


# ------------------------------------------------------------------------------------------------
# The helpers


def test_slug_follows_github():
    assert slug("Networks, checkpoints and the original pretrained models") == (
        "networks-checkpoints-and-the-original-pretrained-models"
    )
    assert slug("Modulated 3-D convolution") == "modulated-3-d-convolution"
    assert slug("`lvg-dataset curate`: shots") == "lvg-dataset-curate-shots"
    assert slug("The [link](x.md) and **bold** of bias_act") == "the-link-and-bold-of-bias_act"
    assert slug("Bias, activation, gain and clamp") == "bias-activation-gain-and-clamp"


def test_anchors_number_repeats_and_skip_code():
    markdown = "# A\n## Setup\n```bash\n# not a heading\n```\n## Setup\n### Setup\n#no\n"
    assert anchors(markdown) == {"a", "setup", "setup-1", "setup-2"}


def test_a_bad_reference_is_caught():
    docs = {"docs/x.md": {"present", "also-here"}}
    lookup = docs.get
    good = "see docs/x.md#present and docs/x.md, and (docs/x.md#also-here)."
    assert broken_references("a.py", good, lookup) == []
    bad = "see docs/x.md#absent, docs/y.md and docs/y.md#z"
    problems = broken_references("a.py", bad, lookup)
    assert len(problems) == 3
    assert "a.py:1: docs/x.md has no heading with anchor #absent" in problems
    assert broken_references("docs/z.md", "[x](x.md#absent)", lookup) == [
        "docs/z.md:1: docs/x.md has no heading with anchor #absent"
    ]
    missing = broken_references("docs/z.md", "![strip](strip.png)", lookup, lambda p: False)
    assert missing == ["docs/z.md:1: strip.png does not exist"]


def test_private_citations_are_recognised():
    assert PRIVATE_CITATION.search(f"(spec {SECTION}2.6)")
    assert PRIVATE_CITATION.search(f"Spec {SECTION}6.1's values")
    assert PRIVATE_CITATION.search(f"as {SECTION}4.2 says")
    assert not PRIVATE_CITATION.search("the spec of a layer (docs/networks.md#layer-schedule)")


# ------------------------------------------------------------------------------------------------
# The repository


def test_no_private_citations():
    hits = [
        f"{path}:{n}: {line.strip()}"
        for path, text in text_files().items()
        for n, line in enumerate(text.splitlines(), 1)
        if PRIVATE_CITATION.search(line)
    ]
    assert not hits, "cite the paper or docs/FILE.md#anchor instead:\n" + "\n".join(hits)


def test_docs_references_resolve():
    problems = [
        problem
        for path, text in text_files().items()
        if path != SELF  # its examples are meant not to resolve
        for problem in broken_references(path, text)
    ]
    assert not problems, "\n".join(problems)


def test_docs_pages_are_checked():
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= set(text_files()), sorted(pages - set(text_files()))
