"""Relative links of the documents a learner reads resolve to files of the repository:
README.md, docs/*.md and the markdown cells of every lesson notebook (answers/ and notebooks/).
Web links (http, https, mailto) and in-page anchors are not followed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]

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


#: ``data.load_nifti``, ``helpers.metrics.hausdorff_distance``: a name of the course's library,
#: not preceded by another package (``monai.data.partition_dataset`` is MONAI's) or a folder
#: (``helpers/metrics.py`` is a file).
HELPERS_NAME = re.compile(r"(?<![\w./])(?:helpers\.)?(config|data|geometry|generator|slices|patches|models|losses|metrics|training"
                          r"|inference|viz)\.(?!py\b)([A-Za-z_]\w*)")


def helpers_names(markdown: str) -> set[tuple[str, str]]:
    return set(HELPERS_NAME.findall(markdown))


def test_helpers_names_finder():
    text = ("`data.load_nifti` and `helpers.metrics.iou`; `monai.data.partition_dataset`, `model.fit`, "
            "`helpers/config.py`, a `config.py`")
    assert helpers_names(text) == {("data", "load_nifti"), ("metrics", "iou")}


NAMING = [d for d in DOCUMENTS if d[0] == "docs/glossary.md" or "00_start_here" in d[0] or "10_where_next" in d[0]]


@pytest.mark.parametrize("name, folder, markdown", NAMING, ids=[d[0] for d in NAMING])
def test_helpers_names_in_the_glossary_and_reading_lessons_exist(name, folder, markdown):
    """The glossary and lessons 00 and 10 name the course's functions (``metrics.hausdorff_distance``);
    every such name exists in helpers (a renamed function fails here, not in a learner's hands)."""
    import importlib

    missing = sorted(f"{module}.{attribute}" for module, attribute in helpers_names(markdown)
                     if not hasattr(importlib.import_module(f"helpers.{module}"), attribute))
    assert not missing, f"{name} names what helpers does not have: {missing}"


def test_the_readme_is_a_landing_page():
    """README.md stays short (what the course is, the two commands, where each reader goes next);
    the guides live in docs/ and the README links each of them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150, f"README.md has {len(readme.splitlines())} lines: move detail into docs/"
    for guide in ("learner-guide.md", "instructor-guide.md", "data.md", "maintainer-guide.md", "results.md",
                  "glossary.md"):
        assert (ROOT / "docs" / guide).is_file(), f"docs/{guide} is missing"
        assert f"docs/{guide}" in readme, f"README.md does not link docs/{guide}"
