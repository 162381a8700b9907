"""Relative links of the documents a learner reads resolve to files of the repository:
README.md, docs/*.md and the markdown cells of every lesson notebook (answers/ and notebooks/).
Web links (http, https, mailto) and in-page anchors are not followed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

#: ``[text](target)`` and ``![alt](target)``; the target ends at a space (a title) or ``)``.
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: ``src="..."`` and ``href="..."`` of HTML in markdown.
HTML_LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def relative_links(markdown: str) -> list[str]:
    """The relative link targets of ``markdown`` (code blocks and inline code left out), without
    their ``#anchor`` or ``?query``."""
    text = INLINE_CODE.sub("", FENCE.sub("", markdown))
    targets = LINK.findall(text) + HTML_LINK.findall(text)
    kept = []
    for target in targets:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue                                    # http:, https:, mailto:, data:, an anchor
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if path:
            kept.append(path)
    return kept


def documents() -> list[tuple[str, Path, str]]:
    """(id, folder the links are relative to, markdown) of every document checked."""
    docs = [("README.md", ROOT, (ROOT / "README.md").read_text(encoding="utf-8"))]
    docs += [(str(p.relative_to(ROOT)), p.parent, p.read_text(encoding="utf-8"))
             for p in sorted((ROOT / "docs").rglob("*.md"))]
    for folder in ("answers", "notebooks"):
        for path in sorted((ROOT / folder).glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb")):
            cells = nbformat.read(path, as_version=4).cells
            text = "\n\n".join(c.source for c in cells if c.cell_type == "markdown")
            docs.append((str(path.relative_to(ROOT)), path.parent, text))
    return docs


DOCUMENTS = documents()


def test_the_link_finder_finds_links_and_leaves_code_and_the_web_alone():
    text = ("See [the glossary](../../docs/glossary.md#dice) and ![a figure](fig%201.png \"title\").\n"
            "<img src=\"pic.png\" width=\"300\"> [web](https://example.org) [top](#setup) `[not](a.md)`\n"
            "```\n[inside](code.md)\n```\n")
    assert relative_links(text) == ["../../docs/glossary.md", "fig 1.png", "pic.png"]


def test_the_glossary_is_checked():
    assert "docs/glossary.md" in [name for name, _, _ in DOCUMENTS]


@pytest.mark.parametrize("name, folder, markdown", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_relative_links_resolve(name, folder, markdown):
    broken = [target for target in relative_links(markdown) if not (folder / target).exists()]
    assert not broken, f"{name}: relative links to nothing: {broken}"
