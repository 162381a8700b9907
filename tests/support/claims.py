"""What the lessons' prose says about their own runs, bound to the outputs that show it.

Every number or behaviour that a markdown cell of an answer notebook states about the run
is a :class:`Claim`: a pattern of the prose (its groups capture the stated values), a
pattern of the notebook's printed outputs (its groups capture the measured values) and the
relation between them. ``tests/lessons/test_claims.py`` checks every claim against the committed
outputs, so a re-run that changes a number a sentence relies on fails CI until the
sentence is rewritten (and its claim with it).

Numbers in prose that are *not* about the run (a definition, a worked example, a recipe
constant, a target) are :class:`Given`: the same prose pattern, with the reason instead of
an output. Every decimal number and percentage in a lesson's markdown (outside code spans,
code blocks, link targets, exercise and section numbers) must lie inside the span of a claim or a
given, so a new number cannot slip into the prose unbound.

Relations (prose value ``p``, printed value ``o``, one pair per capture group):

* ``"equal"``: ``o`` rounded to the decimals of ``p`` equals ``p``;
* ``"at_least"`` / ``"at_most"``: ``o >= p`` / ``o <= p`` (the prose states a bound);
* ``"about"``: ``|o - p| <= tolerance`` (the prose rounds, "about 0.76");
* ``"shown"``: the output pattern matches (a behaviour, e.g. early stopping fired); the
  prose has no groups to compare;
* ``"not_shown"``: the output pattern must *not* match (e.g. no line says the learning
  rate was reduced, when the prose says it was not).

``output`` may also be a function of the printed text and the values the prose pattern
captured, that returns ``None`` when the behaviour the sentence states holds and the
problem in words when it does not (for
statements about a whole table, such as "specificity is close to 1 for every tumour
class").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]

#: Decimal numbers (also in scientific notation, 1e-9) and percentages in prose; what coverage counts.
NUMBER = re.compile(r"(?<![\w.\-/^_])(\d+(?:\.\d+)?[eE][-+]?\d+|\d+\.\d+|\d+(?:\.\d+)?\s?%)(?![\w.]\d)")
_EXERCISE = re.compile(r"Exercise \d+\.\d+|^#+ \d+(?:\.\d+)*", flags=re.M)


@dataclass(frozen=True)
class Claim:
    """A statement of the prose about the run, and the output that shows it."""

    prose: str
    output: str | Callable[[str, tuple[str, ...]], str | None]
    relation: str = "equal"
    tolerance: float = 0.0


@dataclass(frozen=True)
class Given:
    """A number of the prose that is not about the run, and why."""

    prose: str
    why: str


def markdown_cells(path: Path) -> list[str]:
    """The sources of the notebook's markdown cells, in order."""
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


def output_text(path: Path) -> str:
    """Everything the notebook's code cells printed (streams and text results), in order,
    one cell's outputs per block."""
    notebook = nbformat.read(path, as_version=4)
    return outputs_text([cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"])


def outputs_text(cells: list[list[dict]]) -> str:
    """What :func:`output_text` reads from a notebook file, from each code cell's list of
    outputs (as nbformat stores them, or as nbval collects them while it runs the notebook)."""
    blocks = []
    for outputs in cells:
        for output in outputs:
            if output.get("output_type") == "stream":
                blocks.append(output.get("text", ""))
            elif output.get("output_type") in ("execute_result", "display_data"):
                blocks.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(blocks)


def prose_without_code(source: str) -> str:
    """The markdown with code blocks, code spans, link targets, exercise and section numbers blanked
    out (same length, so spans keep their positions)."""
    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))
    source = re.sub(r"```.*?```", blank, source, flags=re.S)
    source = re.sub(r"`[^`]*`", blank, source)
    source = re.sub(r"\]\([^)]*\)", blank, source)
    return _EXERCISE.sub(blank, source)


def _value(text: str) -> float:
    return float(text.replace("%", "").replace(",", "").strip())


def _decimals(text: str) -> int:
    text = text.replace("%", "").strip()
    return len(text.split(".")[1]) if "." in text else 0


def check_claim(claim: Claim, prose: list[str], outputs: str) -> str | None:
    """``None`` when the claim holds, else what is wrong, in words."""
    found = [m for source in prose for m in re.finditer(claim.prose, source, flags=re.S)]
    if not found:
        return f"the prose no longer says {claim.prose!r}: rewrite the claim with the sentence"
    if callable(claim.output):
        problem = claim.output(outputs, found[0].groups())
        return None if problem is None else f"{claim.prose!r}: {problem}"
    printed = re.search(claim.output, outputs, flags=re.S | re.M)
    if claim.relation == "not_shown":
        return None if printed is None else (
            f"the prose {claim.prose!r} relies on no output matching {claim.output!r}, "
            f"but the run printed {printed.group(0)!r}")
    if printed is None:
        return f"no output matches {claim.output!r}, which {claim.prose!r} relies on"
    if claim.relation == "shown":
        return None
    stated, measured = found[0].groups(), printed.groups()
    if len(stated) != len(measured) or not stated:
        return f"{claim.prose!r} and {claim.output!r} must capture the same number of values"
    for said, seen in zip(stated, measured):
        p, o = _value(said), _value(seen)
        if claim.relation == "equal":
            holds = round(o, _decimals(said)) == p
        elif claim.relation == "at_least":
            holds = o >= p
        elif claim.relation == "at_most":
            holds = o <= p
        elif claim.relation == "about":
            holds = abs(o - p) <= claim.tolerance
        else:
            return f"unknown relation {claim.relation!r}"
        if not holds:
            return (f"the prose says {said} ({claim.relation}) in {found[0].group(0)!r}, "
                    f"the run printed {seen} in {printed.group(0)!r}")
    return None


def unbound_numbers(entries: list, prose: list[str]) -> list[str]:
    """Numbers of the prose that no claim or given covers, each with its context."""
    loose = []
    for source in prose:
        visible = prose_without_code(source)
        covered: list[tuple[int, int]] = []
        for entry in entries:
            covered += [m.span() for m in re.finditer(entry.prose, source, flags=re.S)]
        for match in NUMBER.finditer(visible):
            start, end = match.span(1)
            if not any(a <= start and end <= b for a, b in covered):
                loose.append(f"{match.group(1)!r} in ...{source[max(0, start - 50):end + 20]!r}...")
    return loose


def lesson_problems(lesson: str, prose: list[str], outputs: str) -> list[str]:
    """Every claim of ``lesson``'s ledger that does not hold for these outputs, in words."""
    from support.lesson_claims import LEDGER

    return [problem for claim in LEDGER.get(lesson, []) if isinstance(claim, Claim)
            if (problem := check_claim(claim, prose, outputs))]


class FreshRun:
    """The outputs of answer notebooks as nbval executes them, cell by cell, so that the
    claims are checked against this run's outputs as well as the committed ones.

    ``tests/conftest.py`` hands every finished nbval cell of ``answers/`` to :meth:`record`;
    when the notebook's last code cell has finished and every code cell ran, :meth:`record`
    returns the claims that this run's outputs break (the prose stays the committed
    markdown). A re-run that changes an output a sentence relies on thus fails the last
    cell of that notebook in CI, naming the sentence, even when the committed outputs
    still agree with the prose.
    """

    def __init__(self) -> None:
        self.cells: dict[Path, dict[int, list[dict]]] = {}

    def record(self, path: Path, code_cells: int, cell_number: int, outputs: list[dict] | None) -> list[str] | None:
        """Keep one cell's outputs; on the notebook's last code cell, the broken claims.

        Args:
            path: The notebook file (``answers/<lesson>/<lesson>.ipynb``).
            code_cells: How many code cells the notebook has.
            cell_number: This cell's index among the code cells (nbval's ``cell_num``).
            outputs: The outputs the cell produced in this run (``None``: it did not run).

        Returns:
            ``None`` before the last cell, or when some code cell did not run (a partial
            run proves nothing); else the problems (empty when every claim holds).
        """
        ran = self.cells.setdefault(path, {})
        if outputs is None:
            ran.pop(cell_number, None)
        else:
            ran[cell_number] = list(outputs)
        if cell_number != code_cells - 1 or len(ran) != code_cells:
            return None
        self.cells.pop(path)
        return lesson_problems(path.parent.name, markdown_cells(path), outputs_text([ran[i] for i in range(code_cells)]))
