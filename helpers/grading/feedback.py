"""What grading hands back: feedback pages that leak nothing and run nothing, and
downloaded archives collected only for the student they are named for.

Feedback (``nbgrader generate_feedback``, ``python -m helpers feedback`` and the
formgrader's "generate feedback" button; all read ``nbgrader_config.py``):

* :class:`TestSummaries` shows each graded test cell as its ``grade_id``, points and
  passed/failed, and for a failure only the error's type and message (``AssertionError:
  ...``). The test source is never shown: after autograding the hidden tests are back in
  the same cells as the visible ones, and the visible checks are in the student's own
  notebook anyway. An output line of any other cell that quotes a line of a test cell (a
  later cell printing ``In``, a traceback) is removed as well.
* Written answers (nbgrader's manually graded solution cells) are not test cells: each is
  followed by a note with its points, graded by hand apart from the automatic checks ("not
  graded yet" while it still needs an instructor: :class:`GetGradesAndPending` records
  that), and the page opens with the automatic score and the manual one side by side.
* :class:`SanitizeFeedback` makes everything that came from the submission inert: outputs
  other than ``text/plain``, ``image/png`` and ``image/jpeg`` (HTML, JavaScript, SVG,
  Markdown, LaTeX, widget views) become escaped text; markdown cells (a student can edit
  every one) are rendered with raw HTML escaped, harmful links removed and external images
  turned into links, then cleaned with bleach; metadata the template prints (``grade_id``,
  cell ids, tags, image sizes, comments) is made safe or dropped.
* :class:`SafeFeedbackExporter` (nbgrader's HTMLExporter with its feedback template)
  removes what the template itself adds that runs: the MathJax ``<script>`` tags loaded
  from a CDN. The page is self-contained, has no script, no event-handler attribute and no
  ``javascript:`` URL, and the words ``onerror=`` or ``javascript:`` of escaped text are
  written as character references so that even a plain text search finds none.

Downloaded files (:func:`stage_downloads`, used by ``python -m helpers collect --from
FOLDER``, and :class:`SafeExtractorPlugin` for a plain ``nbgrader zip_collect``): an
archive is one student's, the one its name says (``alice.zip``, ``alice_03_loss.zip``);
a notebook inside it whose path names anyone else is refused, and so are members with an
absolute path or ``..``, symbolic links, encrypted or oversized members. Nothing is ever
extracted as such: accepted notebooks are read into memory and written as
``<student>/<lesson>.ipynb``.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from nbgrader.plugins import ExtractorPlugin
from nbgrader.preprocessors import GetGrades
from traitlets import Bool, Unicode

# --- feedback: test cells ----------------------------------------------------------------

#: Test lines shorter than this are not searched for in other outputs (``x = 1`` would
#: match half the notebook).
_MIN_TEST_LINE = 10
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_MESSAGE_LIMIT = 500
_TEST_LINE_REPLACEMENT = "[a line of the tests was removed here]"


def _nbgrader(cell) -> dict:
    meta = (cell.get("metadata") or {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell) -> bool:
    """A graded test cell (nbgrader's "autograder tests"): graded code that is no answer."""
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_manual_answer(cell) -> bool:
    """A written answer graded by hand: an nbgrader solution cell that is also graded
    (markdown or code), as opposed to a test cell."""
    meta = _nbgrader(cell)
    return bool(meta.get("grade")) and bool(meta.get("solution"))


class GetGradesAndPending(GetGrades):
    """nbgrader's GetGrades, which also records in every graded cell whether its grade still
    needs an instructor (``needs_manual_grade``), so that :class:`TestSummaries` can say
    "not graded yet" for a written answer rather than "0 points"."""

    def _get_score(self, cell, resources) -> None:
        super()._get_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        cell.metadata.nbgrader["needs_manual_grade"] = bool(grade.needs_manual_grade)


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(str(item) for item in value)
    return value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True, default=str)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _points(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


class TestSummaries(Preprocessor):
    """Replace every graded test cell by its result; remove test lines shown elsewhere.

    A test cell keeps its nbgrader metadata (``grade_id``, points, score: the template's
    heading shows them) and gets the source ``# Test <grade_id>: ...`` and one output:
    ``passed (1 of 1 point)``, or ``failed (0 of 2 points)`` with ``<Error>: <message>``.
    Run it after nbgrader's GetGrades (which puts the scores in the metadata).
    """

    __test__ = False  # not a pytest test class, whatever its name says
    _needles: list[str] = []
    enabled = Bool(True, help="nbconvert runs a preprocessor only when enabled").tag(config=True)

    begin_hidden = Unicode("### BEGIN HIDDEN TESTS", help="nbgrader's begin_test_delimeter").tag(config=True)
    end_hidden = Unicode("### END HIDDEN TESTS", help="nbgrader's end_test_delimeter").tag(config=True)

    def test_lines(self, nb) -> set[str]:
        """The lines (stripped, at least ``_MIN_TEST_LINE`` long) of every test cell and of
        any cell holding the hidden-tests delimiter: hidden tests, their delimiters and the
        visible checks mixed with them."""
        lines: set[str] = set()
        for cell in nb.get("cells", []):
            source = _text(cell.get("source", ""))
            if is_test_cell(cell) or self.begin_hidden in source:
                lines.update(line.strip() for line in source.splitlines()
                             if len(line.strip()) >= _MIN_TEST_LINE)
        return lines

    def preprocess(self, nb, resources):
        # as printed, as in a repr (print(In)) and as in JSON
        self._needles = sorted({needle for line in self.test_lines(nb)
                                for needle in (line, repr(line)[1:-1], json.dumps(line)[1:-1])})
        automatic, manual = [0.0, 0.0], [0.0, 0.0, 0.0]  # score, max (, points not graded yet)
        cells = []
        for cell in nb.get("cells", []):
            cells.append(cell)
            if is_test_cell(cell) or (cell.get("cell_type") == "code" and
                                      self.begin_hidden in _text(cell.get("source", ""))):
                score, points = self.summarise(cell)
                automatic[0] += score or 0.0
                automatic[1] += points or 0.0
            elif cell.get("cell_type") == "code":
                cell["outputs"] = [self.scrub_output(output) for output in cell.get("outputs", [])]
            if is_manual_answer(cell):
                cells.append(self.manual_note(cell, manual))
        if manual[1]:
            pending = f", {_points(manual[2])} of them not graded yet" if manual[2] else ""
            cells.insert(0, _note_cell(
                f"**Score.** Automatic checks: {_points(automatic[0])} of {_points(automatic[1])} points. "
                f"Written answers, graded by hand: {_points(manual[0])} of {_points(manual[1])} "
                f"{'point' if manual[1] == 1 else 'points'}{pending}."))
        nb["cells"] = cells
        return nb, resources

    def manual_note(self, cell, totals: list[float]) -> dict:
        """A markdown cell saying what a written answer is worth and whether it was graded by
        hand yet; adds its score, points and pending points to ``totals``."""
        meta = _nbgrader(cell)
        points, score = _number(meta.get("points")) or 0.0, _number(meta.get("score")) or 0.0
        grade_id = str(meta.get("grade_id") or "")
        name = f"`{grade_id}`" if _SAFE_ID.fullmatch(grade_id) else "(a written answer)"
        unit = "point" if points == 1 else "points"
        totals[1] += points
        if meta.get("needs_manual_grade"):
            totals[2] += points
            verdict = f"not graded yet ({_points(points)} {unit}, graded by hand by your instructor)"
        else:
            totals[0] += score
            verdict = f"{_points(score)} of {_points(points)} {unit}"
        return _note_cell(f"*Written answer {name}: {verdict}; not part of the automatic score.*")

    # the result of one test cell

    def summarise(self, cell) -> tuple[float | None, float | None]:
        """Replace a test cell by its result; return its (score, points)."""
        meta = _nbgrader(cell)
        grade_id = str(meta.get("grade_id") or "test")
        points, score = _number(meta.get("points")), _number(meta.get("score"))
        outputs = [output for output in cell.get("outputs", []) if isinstance(output, dict)]
        error = next((output for output in outputs if output.get("output_type") == "error"), None)
        wrote_stderr = any(output.get("output_type") == "stream" and output.get("name") == "stderr"
                           for output in outputs)
        if error is not None:
            problem = self.error_line(error)
        elif wrote_stderr:
            problem = ("the test wrote to standard error (nbgrader counts a warning or a log "
                       "message as a failure)")
        elif score is not None and points is not None and score < points:
            problem = "no error message (scored by the grader)"
        else:
            problem = None
        if score is None:
            score = 0.0 if problem else points
        unit = "point" if points == 1 else "points"
        cell["source"] = (f"# Test {grade_id}: its code is not shown in the feedback (the visible "
                          f"checks are in your notebook).")
        if problem is None:
            cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                "text": f"passed ({_points(score)} of {_points(points)} {unit})\n"}]
        else:
            cell["outputs"] = [{"output_type": "error", "ename": "TestFailed", "evalue": problem,
                                "traceback": [f"failed ({_points(score)} of {_points(points)} {unit})",
                                              problem]}]
        return score, points

    def error_line(self, error) -> str:
        """``<ename>: <evalue>`` of an error output (the last line of its traceback), without
        colours, test lines or more than a few hundred characters."""
        name = _ANSI.sub("", _text(error.get("ename", ""))).strip() or "Error"
        value = _ANSI.sub("", _text(error.get("evalue", ""))).strip()
        line = f"{name}: {value}" if value else name
        line = self.scrub_text(line)
        return line if len(line) <= _MESSAGE_LIMIT else line[:_MESSAGE_LIMIT] + " ..."

    # test lines that turn up elsewhere

    def scrub_text(self, text: str) -> str:
        """``text`` with every line that quotes a line of a test cell replaced."""
        if not self._needles or not text:
            return text
        lines = text.split("\n")
        for number, line in enumerate(lines):
            plain = _ANSI.sub("", line)
            if any(needle in plain for needle in self._needles):
                lines[number] = _TEST_LINE_REPLACEMENT
        return "\n".join(lines)

    def scrub_output(self, output):
        if not isinstance(output, dict) or not self._needles:
            return output
        kind = output.get("output_type")
        if kind == "stream":
            output["text"] = self.scrub_text(_text(output.get("text", "")))
        elif kind == "error":
            output["evalue"] = self.scrub_text(_text(output.get("evalue", "")))
            output["traceback"] = [self.scrub_text(_text(line)) for line in output.get("traceback", [])]
        elif kind in ("display_data", "execute_result") and isinstance(output.get("data"), dict):
            for key, value in list(output["data"].items()):
                if not key.startswith("image/") or key == "image/svg+xml":
                    output["data"][key] = self.scrub_text(_text(value))
        return output


def _note_cell(text: str) -> dict:
    """A markdown cell the feedback adds (its text holds nothing of the submission)."""
    import nbformat

    return nbformat.v4.new_markdown_cell(text)


# --- feedback: everything from the submission made inert --------------------------------

#: Output types shown as they are (the template escapes text and base64-embeds images).
SAFE_OUTPUT_TYPES = ("text/plain", "image/png", "image/jpeg")
#: Which unsafe type is shown as text when an output has no useful text/plain.
_UNSAFE_PRIORITY = ("text/html", "image/svg+xml", "text/markdown", "text/latex", "application/javascript",
                    "application/vnd.jupyter.widget-view+json")
_BASE64 = re.compile(r"[A-Za-z0-9+/\s]*={0,2}\s*")
_GENERIC_REPR = re.compile(r"<[\w.]+ object(?: at 0x[0-9a-f]+)?>|<IPython\.core\.display\.\w+ object>")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SAFE_NOTEBOOK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_SAFE_CLASS = re.compile(r"highlight|hl-[a-z0-9]+|anchor-link|[a-z]{1,3}[0-9]?")
_SAFE_IMAGE_URL = re.compile(r"data:image/(?:png|jpeg|gif);base64,[A-Za-z0-9+/]+={0,2}")
_MAX_IMAGE_CHARS = 20_000_000
#: Most characters of an HTML/JavaScript/... output shown as text (a plotly figure is MBs).
_MAX_SHOWN_CHARS = 20_000
_RESOURCE_NAMES = ("student", "first_name", "last_name", "notebook_id", "assignment_id")
_NBGRADER_KEYS = ("grade", "solution", "locked", "task", "grade_id", "points", "score", "comment",
                  "schema_version")

#: Tags that rendered markdown may keep (everything mistune produces for CommonMark, tables
#: and math; raw HTML never gets here: it is escaped first).
MARKDOWN_TAGS = {"a", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5",
                 "h6", "hr", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table",
                 "tbody", "td", "th", "thead", "tr", "ul"}


def _markdown_attribute(tag: str, name: str, value: str) -> bool:
    """Attributes that rendered markdown may keep (bleach's attribute filter)."""
    if name in ("href",) and tag == "a":
        return not value.lower().lstrip().startswith("data:")
    if name == "title" and tag in ("a", "img"):
        return True
    if tag == "img":
        return name == "alt" or (name == "src" and bool(_SAFE_IMAGE_URL.fullmatch(value)))
    if name == "id" and tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return True
    if name == "class" and tag in ("a", "div", "pre", "code", "span"):
        return all(_SAFE_CLASS.fullmatch(token) for token in value.split())
    if name == "start" and tag == "ol":
        return value.isdigit()
    return False


def _renderer_class():
    """nbconvert's markdown renderer with raw HTML escaped, harmful links removed, images
    only as embedded PNG/JPEG/GIF (others become links) and mermaid as plain code."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    class SafeRenderer(IPythonRenderer):
        def block_mermaidjs(self, code: str) -> str:
            return "<pre><code>" + html.escape(code) + "</code></pre>\n"

        def image(self, text: str, url: str, title: str | None = None) -> str:
            url = url.strip()
            if url.startswith("attachment:"):
                data_urls = cast("dict[str, str]", self.attachments)  # _safe_attachments: {name: data URL}
                url = data_urls.get(url[len("attachment:"):], "")
            if _SAFE_IMAGE_URL.fullmatch(url):
                return super().image(text, url, title)
            if not url:
                return "[image: " + text + "]"
            return "[image: " + self.link(text, url, title) + "]"

    return SafeRenderer


def _safe_attachments(attachments) -> dict[str, str]:
    """``{name: data URL}`` of a cell's attachments that are PNG, JPEG or GIF images."""
    safe = {}
    if isinstance(attachments, dict):
        for name, bundle in attachments.items():
            if not isinstance(bundle, dict):
                continue
            for mime in ("image/png", "image/jpeg", "image/gif"):
                data = _text(bundle.get(mime, "")).replace("\n", "").strip()
                if data and _SAFE_IMAGE_URL.fullmatch(f"data:{mime};base64,{data}"):
                    safe[str(name)] = f"data:{mime};base64,{data}"
                    break
    return safe


_ONE_LINE_START, _ONE_LINE_END = '<div class="unet-feedback-markdown">', "</div>"


def _one_line(body: str) -> str:
    """``body`` (HTML) as one ``<div>`` line: markdown passes it through unchanged (an HTML
    block lasts until a blank line), and ``&#10;`` is a newline inside ``<pre>``."""
    return _ONE_LINE_START + body.replace("\r", "").replace("\n", "&#10;") + _ONE_LINE_END


def _clean(rendered: str) -> str:
    import bleach

    return bleach.clean(rendered, tags=MARKDOWN_TAGS, attributes=_markdown_attribute,
                        protocols={"http", "https", "mailto", "data"}, strip=False, strip_comments=True)


def _already_safe(source: str) -> bool:
    """Whether ``source`` is in :func:`safe_markdown`'s form and bleach leaves it as it is
    (then it is safe whoever wrote it: running the sanitiser twice changes nothing)."""
    if not (source.startswith(_ONE_LINE_START) and source.endswith(_ONE_LINE_END) and "\n" not in source):
        return False
    body = source[len(_ONE_LINE_START):-len(_ONE_LINE_END)].replace("&#10;", "\n")
    return _one_line(_clean(body)) == source and _passes_through(source)


def _passes_through(text: str) -> bool:
    """Whether the feedback template's ``markdown2html`` leaves ``text`` as it is."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(text)
    return rendered.strip() == text.strip()


def escaped_block(text: str) -> str:
    """``text`` as an escaped ``<pre>`` block that the template's markdown renders verbatim."""
    return _one_line("<pre>" + html.escape(text) + "</pre>")


def safe_markdown(source: str, attachments=None) -> str:
    """Student markdown as HTML that runs nothing, in a form the feedback template's
    ``markdown2html`` passes through unchanged (put it back as the cell's source).

    Raw HTML is escaped (shown as text), links other than http(s), mailto and relative
    ones go nowhere, images other than embedded PNG/JPEG/GIF become links, and the result
    is cleaned by bleach with a list of allowed tags and attributes. Falls back to the
    escaped source in ``<pre>`` if rendering fails. Idempotent: its own result comes back
    unchanged (the formgrader's exporter and the feedback both run the sanitiser).
    """
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    source = _text(source)
    if not source.strip():
        return ""
    try:
        if _already_safe(source):
            return source
        renderer = _renderer_class()(escape=True, allow_harmful_protocols=False,
                                     attachments=_safe_attachments(attachments))
        rendered = MarkdownWithMath(renderer=renderer).render(source)
        result = _one_line(_clean(rendered))
        if _passes_through(result):
            return result
    except Exception:  # noqa: BLE001 - any failure: show the source as plain text
        pass
    return escaped_block(source)


def _safe_output(output) -> dict | None:
    """One code-cell output with only safe content (None: drop it)."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return {"output_type": "stream", "name": name, "text": _text(output.get("text", ""))}
    if kind == "error":
        traceback = output.get("traceback", [])
        return {"output_type": "error", "ename": _text(output.get("ename", "")),
                "evalue": _text(output.get("evalue", "")),
                "traceback": [_text(line) for line in traceback] if isinstance(traceback, list) else []}
    if kind not in ("display_data", "execute_result"):
        return None
    raw_data = output.get("data")
    data = raw_data if isinstance(raw_data, dict) else {}
    safe: dict = {}
    unsafe: dict = {}
    metadata: dict = {}
    for key, value in data.items():
        if key == "text/plain":
            safe[key] = _text(value)
        elif key in SAFE_OUTPUT_TYPES and isinstance(value, str) \
                and len(value) <= _MAX_IMAGE_CHARS and _BASE64.fullmatch(value):
            safe[key] = value
            sizes = (output.get("metadata") or {}).get(key)
            if isinstance(sizes, dict):
                kept = {name: sizes[name] for name in ("width", "height")
                        if isinstance(sizes.get(name), int) and not isinstance(sizes.get(name), bool)
                        and 0 < sizes[name] < 100_000}
                if kept:
                    metadata[key] = kept
        else:
            unsafe[key] = value
    plain = safe.get("text/plain", "")
    if unsafe and (not plain.strip() or _GENERIC_REPR.fullmatch(plain.strip())):
        key = next((k for k in _UNSAFE_PRIORITY if k in unsafe), sorted(unsafe)[0])
        shown = _text(unsafe[key])
        if len(shown) > _MAX_SHOWN_CHARS:
            shown = shown[:_MAX_SHOWN_CHARS] + f"\n... ({len(shown) - _MAX_SHOWN_CHARS} more characters)"
        safe["text/plain"] = f"[{key} output, shown as text]\n{shown}"
    if not safe:
        return None
    result = {"output_type": kind, "data": safe, "metadata": metadata}
    if kind == "execute_result":
        count = output.get("execution_count")
        result["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None
    return result


def _escape_once(value) -> str:
    """``value`` HTML-escaped, quotes included; escaping it again changes nothing."""
    return html.escape(html.unescape(str(value)), quote=True)


def _safe_nbgrader(meta: dict) -> dict:
    safe = {key: meta[key] for key in _NBGRADER_KEYS if key in meta}
    for key in ("grade", "solution", "locked", "task"):
        if key in safe:
            safe[key] = bool(safe[key])
    for key in ("points", "score"):
        if key in safe and _number(safe[key]) is None:
            safe[key] = 0.0 if safe[key] is not None else None
    if "grade_id" in safe:
        grade_id = str(safe["grade_id"])
        safe["grade_id"] = grade_id if _SAFE_ID.fullmatch(grade_id) else _escape_once(grade_id)
    if safe.get("comment"):
        safe["comment"] = safe_markdown(_text(safe["comment"]))
    return safe


class SanitizeFeedback(Preprocessor):
    """Make every part of an autograded notebook that the feedback template renders inert.

    * code cells: outputs keep ``text/plain``, ``image/png`` and ``image/jpeg`` (valid
      base64, integer sizes); every other type (HTML, JavaScript, SVG, Markdown, LaTeX,
      widget views, ...) is shown as escaped text when the output has no useful
      ``text/plain`` of its own; streams and errors are text the template escapes;
    * markdown cells: :func:`safe_markdown`; raw cells: escaped text; other cells: dropped;
    * metadata: cells keep only their nbgrader fields (``grade_id`` escaped unless it is
      a plain identifier, the grader's comment as safe markdown), cell ids are plain
      identifiers, the notebook keeps only ``kernelspec`` and ``language_info``;
    * resources: the template's own sanitising switch on (no JavaScript or widget
      output blocks), the names the templates print escaped.

    Running it twice changes nothing more than running it once: the formgrader's exporter
    runs it (``HTMLExporter.preprocessors``), and so does the feedback, after GetGrades.
    """

    enabled = Bool(True, help="nbconvert runs a preprocessor only when enabled").tag(config=True)

    def preprocess(self, nb, resources):
        cells = []
        for index, cell in enumerate(nb.get("cells", [])):
            kind = cell.get("cell_type")
            if kind not in ("code", "markdown", "raw"):
                continue
            meta = _safe_nbgrader(_nbgrader(cell))
            cell["metadata"] = {"nbgrader": meta} if meta else {}
            if not (isinstance(cell.get("id"), str) and _SAFE_ID.fullmatch(cell["id"])):
                cell["id"] = f"cell-{index}"
            if kind == "code":
                cell["source"] = _text(cell.get("source", ""))
                count = cell.get("execution_count")
                cell["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None
                cell["outputs"] = [safe for safe in map(_safe_output, cell.get("outputs", []) or [])
                                   if safe is not None]
            elif kind == "markdown":
                cell["source"] = safe_markdown(cell.get("source", ""), cell.get("attachments"))
                cell.pop("attachments", None)
            else:  # raw: shown as text, in a markdown cell the template renders
                cell["cell_type"] = "markdown"
                cell["source"] = escaped_block(_text(cell.get("source", ""))) if _text(cell.get("source", "")) else ""
                cell.pop("attachments", None)
            cells.append(cell)
        nb["cells"] = cells
        nb["metadata"] = {key: nb.get("metadata", {})[key] for key in ("kernelspec", "language_info")
                          if isinstance(nb.get("metadata", {}).get(key), dict)}
        resources["should_sanitize_html"] = True
        # names the templates print unescaped (feedback: the notebook; formgrader: the
        # student, their name, the notebook and the assignment)
        graded = resources.get("nbgrader")
        for where, key in [(graded, "notebook")] + [(resources, key) for key in _RESOURCE_NAMES]:
            if isinstance(where, dict) and isinstance(where.get(key), str) \
                    and not _SAFE_NOTEBOOK_NAME.fullmatch(where[key]):
                where[key] = _escape_once(where[key])
        return nb, resources


# --- feedback: the page -------------------------------------------------------------------

_DROP_TAGS = ("script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "form",
              "link", "noscript", "template", "portal")
_URL_ATTRIBUTES = ("href", "src", "action", "formaction", "xlink:href", "srcset", "background",
                   "poster", "data", "lowsrc", "dynsrc", "cite", "longdesc", "usemap", "ping")
#: Attributes whose URL the browser loads by itself (the rest are links a reader follows).
_LOADED_URL_ATTRIBUTES = ("src", "srcset", "poster", "background", "data", "lowsrc", "dynsrc")
_ALLOWED_URL = re.compile(r"(?:https?:|mailto:|#|data:image/(?:png|jpeg|gif);base64,)|[^:]*$", re.I)
_EMBEDDED_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif);base64,", re.I)
_HANDLER_WORD = re.compile(r"(?i)\b(on[a-z]+)(\s*)=")
_SCRIPT_URL_WORD = re.compile(r"(?i)\b(javascript|vbscript|livescript)(\s*):")


def _entities(text: str) -> str:
    """bs4's minimal escaping plus ``=`` after ``on...`` and ``:`` after ``javascript``
    as character references (rendered the same; no text search finds them)."""
    from bs4.dammit import EntitySubstitution

    text = EntitySubstitution.substitute_xml(text)
    text = _HANDLER_WORD.sub(r"\1\2&#61;", text)
    return _SCRIPT_URL_WORD.sub(r"\1\2&#58;", text)


def inert_page(page: str) -> str:
    """An HTML page with nothing that runs or loads: no script, frame, object, form, link
    or base element, no ``on*`` attribute, no ``http-equiv`` meta; images only embedded
    (PNG/JPEG/GIF ``data:`` URLs), links only to http(s), mailto, ``#anchors`` and
    relative paths."""
    from bs4 import BeautifulSoup
    from bs4.formatter import HTMLFormatter

    soup = BeautifulSoup(page, features="html.parser")
    for tag in soup.find_all(_DROP_TAGS):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        if tag.name == "meta" and "http-equiv" in {name.lower() for name in tag.attrs}:
            tag.decompose()
            continue
        for name in list(tag.attrs):
            value = tag.attrs[name]
            lowered = name.lower()
            if lowered.startswith("on") or lowered in ("formaction", "srcdoc"):
                del tag.attrs[name]
            elif lowered in _URL_ATTRIBUTES:
                text = " ".join(value) if isinstance(value, list) else str(value)
                compact = re.sub(r"[\x00-\x20]", "", text)
                if lowered in _LOADED_URL_ATTRIBUTES:
                    allowed = bool(_EMBEDDED_IMAGE.match(compact))
                else:
                    allowed = bool(_ALLOWED_URL.match(compact)) and not compact.lower().startswith("data:")
                if not allowed:
                    del tag.attrs[name]
    formatter = HTMLFormatter(entity_substitution=_entities)
    return soup.decode(formatter=formatter)


class SafeFeedbackExporter(HTMLExporter):
    """nbgrader's HTML exporter for feedback, whose page is passed through :func:`inert_page`
    (removing the MathJax scripts of nbgrader's template: formulas stay as TeX text)."""

    def from_notebook_node(self, nb, resources=None, **kw):
        page, resources = super().from_notebook_node(nb, resources, **kw)
        return inert_page(page), resources


# --- downloaded archives -----------------------------------------------------------------

#: Largest notebook read from an archive (a lesson notebook with its plots is a few MB).
MAX_NOTEBOOK_BYTES = 64 * 2**20
#: Most members an archive may have.
MAX_MEMBERS = 10_000
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
_JUNK = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".DS_Store"}
_BAD_ID = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def valid_student_id(name: str) -> bool:
    """Whether ``name`` can be a student id (and a folder name): not empty, no path
    separator or control character, not starting with a dot."""
    return bool(name) and not name.startswith(".") and not _BAD_ID.search(name) and name.strip() == name


def _strip_lesson(stem: str, lessons: Iterable[str]) -> tuple[str, str | None]:
    """``("alice", "03_x")`` for ``alice_03_x`` (or ``alice-03_x``); ``("alice", None)``
    for ``alice``; ``("", "03_x")`` for ``03_x``."""
    for lesson in sorted(lessons, key=len, reverse=True):
        if stem == lesson:
            return "", lesson
        for separator in ("_", "-"):
            if stem.endswith(separator + lesson):
                return stem[: -len(separator + lesson)], lesson
    return stem, None


def archive_student(archive_name: str, lessons: Iterable[str]) -> str | None:
    """The student an archive is named for: ``alice.zip``, ``alice_03_x.zip`` and
    ``alice-03_x.zip`` are alice's; None when the name names no valid student id."""
    stem = archive_name[:-4] if archive_name.lower().endswith(".zip") else archive_name
    student, _ = _strip_lesson(stem, lessons)
    return student if valid_student_id(student) else None


def notebook_owner(file_name: str, lessons: Iterable[str]) -> tuple[str, str] | None:
    """``(student, lesson)`` of a notebook named ``<student>_<lesson>.ipynb`` (or with
    ``-``), ``("", lesson)`` for ``<lesson>.ipynb``; None for any other name."""
    if not file_name.endswith(".ipynb"):
        return None
    student, lesson = _strip_lesson(file_name[: -len(".ipynb")], lessons)
    return (student, lesson) if lesson is not None else None


@dataclass
class ArchiveContents:
    """What :func:`read_archive` accepted (``{lesson: notebook bytes}`` for ``student``)
    and refused (messages naming the archive, the member and the fix)."""

    archive: str
    student: str | None
    notebooks: dict[str, bytes] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def _unsafe_name(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return ("\x00" in name or name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name))
            or any(part == ".." for part in parts))


def read_archive(path: str | os.PathLike, lessons: Iterable[str], wanted: Iterable[str] | None = None,
                 max_bytes: int = MAX_NOTEBOOK_BYTES) -> ArchiveContents:
    """The notebooks of one downloaded zip that belong to the student it is named for.

    ``lessons`` are the course's lessons (to read names), ``wanted`` those to collect
    (default: all). A notebook ``<lesson>.ipynb`` or ``<student>_<lesson>.ipynb``, at the
    top or in folders, is accepted when every folder of its path and the prefix of its
    name are the archive's student, the lesson or the archive's own name. Refused, with a
    message: a notebook whose path names someone else, two notebooks for one lesson,
    members with an absolute path or ``..``, symbolic links, encrypted, unreadable or
    oversized members (over ``max_bytes``, zip bombs), archives inside the archive.
    Nothing is written; accepted notebooks are read into memory, at most ``max_bytes`` each.
    """
    path = Path(path)
    label = _CONTROL.sub("?", path.name)  # the name as printed (no terminal escapes)
    lessons = list(lessons)
    wanted = set(lessons if wanted is None else wanted)
    student = archive_student(path.name, lessons)
    contents = ArchiveContents(path.name, student)
    if student is None:
        contents.messages.append(
            f"{label}: not collected: its name names no student. An archive holds one "
            f"student's work and is named for them: <student>.zip or <student>_<lesson>.zip.")
        return contents
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        contents.messages.append(f"{label}: not collected: not a readable zip file ({error}); "
                                 f"download it again.")
        return contents
    refuse = contents.messages.append
    neutral = {student, path.name[:-4] if path.name.lower().endswith(".zip") else path.name, *lessons}
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            refuse(f"{label}: not collected: {len(members)} files (at most {MAX_MEMBERS}); "
                   f"ask {student} to zip only the notebook.")
            return contents
        candidates: dict[str, list[zipfile.ZipInfo]] = {}
        for info in members:
            name = info.filename
            if _unsafe_name(name) or _unsafe_name(info.orig_filename):
                refuse(f"{label}: refused {name!r}: an absolute path or '..' (a member may "
                       f"not point outside the archive). Ask {student} to zip the notebook itself.")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                refuse(f"{label}: refused {name!r}: a symbolic link. Ask {student} to zip the "
                       f"notebook file itself.")
                continue
            if info.is_dir():
                continue
            parts = [part for part in re.split(r"[\\/]", name) if part not in ("", ".")]
            if not parts or any(part in _JUNK for part in parts) or parts[-1].startswith("._"):
                continue
            if parts[-1].lower().endswith(_ARCHIVE_SUFFIXES):
                refuse(f"{label}: not extracted {name!r}: an archive inside the archive. "
                       f"Ask {student} for one zip with the notebook in it.")
                continue
            owner = notebook_owner(parts[-1], lessons)
            if owner is None:
                if parts[-1].endswith(".ipynb"):
                    refuse(f"{label}: skipped {name!r}: not named <lesson>.ipynb for a lesson "
                           f"of the course ({', '.join(lessons)}).")
                continue
            prefix, lesson = owner
            if lesson not in wanted:
                continue
            named = [_strip_lesson(part, lessons)[0] for part in parts[:-1]] + [prefix]
            others = [part for part in named if part and part not in neutral]
            if others:
                refuse(f"{label}: refused {name!r}: the archive is named for {student!r}, but "
                       f"this notebook's path names {others[-1]!r}. An archive is collected only "
                       f"for the student it is named for: if the notebook is {student}'s, put it "
                       f"at the top of the archive as {lesson}.ipynb; if it is {others[-1]}'s, it "
                       f"must come in {others[-1]}'s own download ({others[-1]}.zip or "
                       f"{others[-1]}_{lesson}.ipynb).")
                continue
            candidates.setdefault(lesson, []).append(info)
        for lesson, infos in sorted(candidates.items()):
            if len(infos) > 1:
                refuse(f"{label}: refused {lesson}: {len(infos)} notebooks for it "
                       f"({', '.join(info.filename for info in infos)}); ask {student} for an "
                       f"archive with one.")
                continue
            info = infos[0]
            if info.flag_bits & 0x1:
                refuse(f"{label}: refused {info.filename!r}: encrypted. Ask {student} for an "
                       f"archive without a password.")
                continue
            if info.file_size > max_bytes:
                refuse(f"{label}: refused {info.filename!r}: {info.file_size} bytes unpacked "
                       f"(at most {max_bytes}); clear the notebook's outputs and zip it again.")
                continue
            try:
                with archive.open(info) as handle:
                    data = handle.read(max_bytes + 1)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError,
                    ValueError) as error:
                refuse(f"{label}: refused {info.filename!r}: cannot be read ({error}); "
                       f"download the archive again.")
                continue
            if len(data) > max_bytes:
                refuse(f"{label}: refused {info.filename!r}: over {max_bytes} bytes unpacked; "
                       f"clear the notebook's outputs and zip it again.")
                continue
            contents.notebooks[lesson] = data
    return contents


def _write_notebook(base: Path, student: str, lesson: str, data: bytes) -> Path:
    """Write ``<base>/<student>/<lesson>.ipynb`` (never outside ``base``)."""
    if not valid_student_id(student):
        raise ValueError(f"not a student id: {student!r}")
    target = base / student / f"{lesson}.ipynb"
    if base.resolve() not in target.resolve().parents:
        raise ValueError(f"{target} is outside {base}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def stage_downloads(files: Iterable[str | os.PathLike], lessons: Iterable[str],
                    wanted: Iterable[str], target: Callable[[str], Path]) -> list[str]:
    """Put downloaded files in place for ``nbgrader zip_collect`` as
    ``target(lesson)/<student>/<lesson>.ipynb``; returns the messages of what was refused.

    A ``.zip`` is the work of the student it is named for (:func:`read_archive`); a loose
    ``<student>_<lesson>.ipynb`` is that student's. A student with more than one notebook
    for a lesson gets none of them (the message names them: keep one and collect again).
    Files that name no lesson of ``wanted`` are left out without a message.
    """
    lessons, wanted = list(lessons), list(wanted)
    messages: list[str] = []
    sources: dict[tuple[str, str], list[str]] = {}  # (student, lesson): files that hand it in

    def put(student: str, lesson: str, shown: str, data: bytes) -> None:
        sources.setdefault((student, lesson), []).append(shown)
        if len(sources[(student, lesson)]) == 1:  # one notebook in memory at a time
            _write_notebook(target(lesson), student, lesson, data)

    for item in sorted(Path(file) for file in files):
        shown = _CONTROL.sub("?", item.name)  # as printed (no terminal escapes)
        if item.suffix.lower() == ".zip":
            contents = read_archive(item, lessons, wanted)
            messages.extend(contents.messages)
            if contents.student is not None:  # else it has no notebooks
                for lesson, data in contents.notebooks.items():
                    put(contents.student, lesson, shown, data)
        elif item.suffix == ".ipynb":
            owner = notebook_owner(item.name, lessons)
            if owner is None or owner[1] not in wanted:
                continue
            student, lesson = owner
            if not valid_student_id(student):
                messages.append(f"{shown}: not collected: its name names no student; name it "
                                f"<student>_{lesson}.ipynb.")
                continue
            if item.stat().st_size > MAX_NOTEBOOK_BYTES:
                messages.append(f"{shown}: not collected: over {MAX_NOTEBOOK_BYTES} bytes; clear "
                                f"the notebook's outputs.")
                continue
            put(student, lesson, shown, item.read_bytes())
    for (student, lesson), names in sorted(sources.items()):
        if len(names) > 1:
            written = target(lesson) / student / f"{lesson}.ipynb"
            written.unlink()
            with contextlib.suppress(OSError):  # the student's folder, when nothing else is in it
                written.parent.rmdir()
            messages.append(f"{student}: {lesson} not collected: {len(names)} downloads hand it in "
                            f"({', '.join(names)}); keep one and collect again.")
    return messages


class SafeExtractorPlugin(ExtractorPlugin):
    """``nbgrader zip_collect``'s extractor with the course's rules: each ``.zip`` is read
    by :func:`read_archive` (its notebook goes to ``<extracted>/<student>/<lesson>.ipynb``
    only for the student the archive is named for; nothing else is extracted); other
    archive types are refused; other files are copied as nbgrader does."""

    def extract(self, archive_path: str, extracted_path: str) -> None:
        coursedir = self.parent.coursedir
        lesson = coursedir.assignment_id
        released = Path(coursedir.root) / coursedir.release_directory
        lessons = sorted({p.name for p in released.glob("*") if p.is_dir()} | {lesson})
        for root, _, names in os.walk(archive_path):
            relative = os.path.relpath(root, archive_path)
            for name in sorted(names):
                source = Path(root) / name
                if name.lower().endswith(".zip"):
                    contents = read_archive(source, lessons, [lesson])
                    for message in contents.messages:
                        self.log.warning(message)
                    if contents.student is not None:  # else it has no notebooks
                        for found, data in contents.notebooks.items():
                            _write_notebook(Path(extracted_path), contents.student, found, data)
                elif name.lower().endswith(_ARCHIVE_SUFFIXES):
                    self.log.warning(f"{name}: not extracted: only .zip archives are read; unpack "
                                     f"it into a zip named for its student.")
                else:
                    destination = Path(os.path.normpath(Path(extracted_path) / relative)) / name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(source, destination)


__all__ = ["ArchiveContents", "SafeExtractorPlugin", "SafeFeedbackExporter", "SanitizeFeedback",
           "TestSummaries", "archive_student", "escaped_block", "inert_page", "notebook_owner",
           "read_archive", "safe_markdown", "stage_downloads", "valid_student_id"]
