"""Feedback that leaks nothing and runs nothing, and downloads collected only for the student
they are named for (tests helpers/grading/feedback.py, its use in nbgrader_config.py and
the zip branch of helpers.grading.commands.collect).

Unit tests build notebooks and zips in memory. The ``slow`` tests run the real nbgrader in
a temporary course root holding the plain-Python example lesson, whose hidden tests carry a
unique marker: a hostile class is collected, autograded and given feedback, and downloaded
archives are collected through ``python -m helpers collect`` and a plain ``nbgrader
zip_collect``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import stat
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from support.course import FIXTURES, REPO_ROOT, TEST_CONFIG
from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from helpers.grading import commands as grading
from helpers.grading import feedback as grading_feedback
from helpers.grading.feedback import (SafeFeedbackExporter, SanitizeFeedback, TestSummaries,
                                      read_archive, safe_markdown, stage_downloads)

EXAMPLE = "00_example"
MARKER = "SECRET-HIDDEN-7f3a9c"
PNG = base64.b64encode(
    bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                  "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")).decode()

#: Markdown a student could write (each must come out inert).
HOSTILE_MARKDOWN = [
    '<img src=x onerror="alert(1)">',
    "<script>alert(2)</script>",
    "[click](javascript:alert(3))",
    '<a href="javascript:alert(4)">raw link</a>',
    "<iframe src=\"javascript:alert(5)\"></iframe>",
    "<svg onload=alert(6)><script>alert(7)</script></svg>",
    "<style>body{display:none}</style>",
    "![pic](javascript:alert(8))",
    "<JaVaScRiPt:alert(9)>",
    "```mermaid\n<script>alert(10)</script>\n```",
    '<details open ontoggle="alert(11)">x</details>',
]


# --- what a page may contain -------------------------------------------------------------


class _Elements(HTMLParser):
    """Every start tag of a page with its attributes, as a browser's parser sees them."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def live_content(page: str) -> list[str]:
    """What in ``page`` could run or load: script/frame/object elements, on* attributes,
    javascript:/vbscript: URLs, URLs of resources loaded from elsewhere."""
    found = []
    for tag, attrs in _Elements(page).tags:
        if tag in {"script", "iframe", "frame", "object", "embed", "applet", "base", "link", "form", "svg", "math"}:
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            compact = re.sub(r"[\x00-\x20]", "", value).lower()
            if name.startswith("on"):
                found.append(f"<{tag} {name}=...>")
            if compact.startswith(("javascript:", "vbscript:", "data:text", "data:image/svg")):
                found.append(f"<{tag} {name}={value[:40]}>")
            if name in {"src", "srcset", "poster", "background", "data"} and not compact.startswith("data:image/"):
                found.append(f"<{tag} {name}={value[:40]}> (loads from elsewhere)")
    return found


def text_of(page: str) -> str:
    return "".join(_Elements(page).text)


def grep_clean(page: str) -> list[str]:
    """The strings a plain text search for live content would find (outside the template's
    stylesheets: bootstrap's CSS says ``a[href^="javascript:"]``)."""
    markup = re.sub(r"(?is)<style[^>]*>.*?</style>", "", page).lower()
    return [word for word in ("<script", "onerror=", "onload=", "javascript:", "<iframe", "<svg")
            if word in markup]


# --- unit tests: markdown ----------------------------------------------------------------


@pytest.mark.parametrize("source", HOSTILE_MARKDOWN)
def test_markdown_from_the_submission_is_inert(source):
    rendered = safe_markdown(f"Some text\n\n{source}\n\nmore *text*")
    assert not live_content(rendered), (source, rendered)
    assert "<em>text</em>" in rendered
    # the feedback template renders the cell's markdown again: it must come out unchanged
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    assert markdown2html_mistune(rendered).strip() == rendered


def test_markdown_shows_raw_html_as_text():
    rendered = safe_markdown("<script>alert(1)</script> and <b>bold</b>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "<script>alert(1)</script> and <b>bold</b>" in text_of(rendered)


def test_lesson_markdown_stays_readable():
    source = ("# Dice loss\n\nThe **Dice** score: $D = \\frac{2|A \\cap B|}{|A| + |B|}$, see "
              "[the paper](https://arxiv.org/abs/1606.04797).\n\n"
              "```python\ndef f(x):\n\n    return x < 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
              "- one\n- two\n\n![badge](https://example.org/badge.svg)\n\n![plot](attachment:plot.png)\n\n"
              "files in data/<case>/")
    rendered = safe_markdown(source, {"plot.png": {"image/png": PNG}})
    assert not live_content(rendered)
    for part in ('<h1 id="Dice-loss">', "<strong>Dice</strong>", '<a href="https://arxiv.org/abs/1606.04797">',
                 "<table>", "<li>one</li>", f'src="data:image/png;base64,{PNG}"'):
        assert part in rendered, part
    text = text_of(rendered)
    assert "\\frac{2|A \\cap B|}" in text and "return x < 1" in text and "data/<case>/" in text
    assert "def f(x):\n\n    return" in text, "a blank line in a code block must survive"
    # an external image is a link, not loaded by the page
    assert '<a href="https://example.org/badge.svg">badge</a>' in rendered


def test_svg_attachment_is_not_embedded():
    svg = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>').decode()
    rendered = safe_markdown("![x](attachment:a.svg)", {"a.svg": {"image/svg+xml": svg}})
    assert "svg" not in rendered and not live_content(rendered)


# --- unit tests: the preprocessors and the page, without a gradebook ----------------------


def _meta(grade_id, *, grade=False, solution=False, locked=False, points=0):
    return {"nbgrader": {"grade": grade, "grade_id": grade_id, "locked": locked, "points": points,
                         "schema_version": 3, "solution": solution, "task": False}}


def _error(ename, evalue, *frames):
    return new_output("error", ename=ename, evalue=evalue,
                      traceback=[*frames, f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def graded_notebook():
    """An autograded notebook as nbgrader leaves it: hidden tests back in the test cells, a
    failing one with a traceback quoting them, hostile outputs, markdown and metadata."""
    test = (f'assert square(3) == 9, "square(3) should be 9"\n### BEGIN HIDDEN TESTS\n'
            f'assert square(-2) == 4  # {MARKER}\n### END HIDDEN TESTS')
    hostile = new_code_cell("display(...)", execution_count=2, outputs=[
        new_output("display_data", data={"text/html": "<script>alert(1)</script><b>bold</b>",
                                         "text/plain": "<IPython.core.display.HTML object>"}),
        new_output("display_data", data={"application/javascript": "alert(2)"}),
        new_output("display_data", data={"image/svg+xml": "<svg><script>alert(3)</script></svg>"}),
        new_output("display_data", data={"text/markdown": "<img src=x onerror=alert(4)>"}),
        new_output("display_data", data={"text/latex": "$\\href{javascript:alert(5)}{x}$"}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                                         "text/plain": "IntSlider(value=3)"}),
        new_output("display_data", data={"image/png": '"><script>alert(6)</script>'}),
        new_output("display_data", data={"image/png": PNG},
                   metadata={"image/png": {"width": "1 onerror=alert(7)", "height": 10}}),
        new_output("execute_result", data={"text/html": "<table><tr><td>df</td></tr></table>",
                                           "text/plain": "   a\n0  1"}, execution_count=2),
    ])
    hostile.metadata["tags"] = ['"><script>alert(8)</script>']
    nb = new_notebook(cells=[
        new_markdown_cell('# Lesson <img src=x onerror="alert(9)">\n\n[go](javascript:alert(10))'),
        new_code_cell("def square(x):\n    return x * 3", metadata=_meta("square", solution=True)),
        new_code_cell(test, metadata=_meta("square_check", grade=True, locked=True, points=1),
                      outputs=[_error("AssertionError", "square(3) should be 9",
                                      f"\x1b[0;32m----> 2\x1b[0m assert square(3) == 9\n      4 assert square(-2) == 4  "
                                      f"# {MARKER}")]),
        new_code_cell('assert True\n### BEGIN HIDDEN TESTS\nassert "x" * 2 == "xx"\n### END HIDDEN TESTS',
                      metadata=_meta("other_check", grade=True, locked=True, points=2),
                      outputs=[new_output("stream", name="stdout", text=f"printed by a test {MARKER}\n")]),
        hostile,
        new_code_cell("print(In)", outputs=[new_output(
            "stream", name="stdout", text=f"['', 'def square(x)', {test!r}]\nsomething else\n")]),
        new_raw_cell("<script>alert(11)</script>", metadata={"raw_mimetype": "text/html"}),
    ], metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"x": "</script><script>alert(12)"}},
                 "title": "<script>alert(13)</script>",
                 "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells[2].metadata["nbgrader"]["grade_id"] = "square_check"
    return nb


class _FakeGrades(Preprocessor):
    """GetGrades without a gradebook: scores from the outputs, resources as nbgrader sets them."""

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
                meta["score"] = 0.0 if failed else float(meta["points"])
            if meta.get("solution"):
                meta["comment"] = '<img src=x onerror="alert(14)"> well done'
        resources["nbgrader"] = {"notebook": "00_example", "score": 2.0, "max_score": 3.0, "late_penalty": 0}
        return nb, resources


def _exporter(exporter_class, preprocessors):
    """An exporter set up as nbgrader's GenerateFeedback sets up its own."""
    import nbgrader
    from traitlets.config import Config

    templates = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
    config = Config()
    config.HTMLExporter.template_name = "feedback"
    config.HTMLExporter.extra_template_basedirs = [str(templates)]
    config.HTMLExporter.extra_template_paths = [
        str(templates.parent / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    config.Exporter.default_preprocessors = []
    exporter = exporter_class(config=config)
    for preprocessor in preprocessors:
        exporter.register_preprocessor(preprocessor, enabled=True)
    return exporter


def test_test_cells_show_name_points_result_and_message_only():
    nb, _ = TestSummaries().preprocess(graded_notebook(), {})
    square, other = nb.cells[2], nb.cells[3]
    for cell in (square, other):
        assert "assert" not in cell.source and "HIDDEN" not in cell.source
        assert cell.metadata.nbgrader["grade_id"] in cell.source
    assert square.outputs == [{"output_type": "error", "ename": "TestFailed",
                               "evalue": "AssertionError: square(3) should be 9",
                               "traceback": ["failed (0 of 1 point)", "AssertionError: square(3) should be 9"]}]
    assert other.outputs[0]["text"] == "passed (2 of 2 points)\n"
    # a later cell that prints the input history shows no hidden test line
    history = nb.cells[5].outputs[0]["text"]
    assert MARKER not in history and "something else" in history
    assert MARKER not in json.dumps(nb)


def _with_written_answer(pending: bool, score: float = 0.0):
    nb = graded_notebook()
    answer = new_markdown_cell("Because len([]) is 0.", metadata={"nbgrader": {
        "grade": True, "solution": True, "task": False, "locked": False, "grade_id": "mean_written",
        "points": 2, "score": score, "needs_manual_grade": pending, "schema_version": 3}})
    nb.cells.insert(4, answer)
    return nb


def test_a_written_answer_is_apart_from_the_automatic_score():
    nb, _ = TestSummaries().preprocess(_with_written_answer(pending=True), {})
    top = nb.cells[0].source
    assert top.startswith("**Score.** Automatic checks: 2 of 3 points."), top
    assert "Written answers, graded by hand: 0 of 2 points, 2 of them not graded yet." in top
    index = next(i for i, c in enumerate(nb.cells) if c.source == "Because len([]) is 0.")
    note = nb.cells[index + 1]
    assert note.cell_type == "markdown" and "`mean_written`: not graded yet (2 points" in note.source
    assert "passed" not in note.source and "failed" not in note.source


def test_a_written_answer_graded_by_hand_shows_its_score():
    nb, _ = TestSummaries().preprocess(_with_written_answer(pending=False, score=1.5), {})
    assert "Written answers, graded by hand: 1.5 of 2 points." in nb.cells[0].source
    assert any("`mean_written`: 1.5 of 2 points;" in c.source for c in nb.cells)


def test_no_score_line_without_written_answers():
    nb, _ = TestSummaries().preprocess(graded_notebook(), {})
    assert not nb.cells[0].source.startswith("**Score.**")


def test_outputs_and_metadata_from_the_submission_become_inert():
    nb, resources = SanitizeFeedback().preprocess(graded_notebook(), {"nbgrader": {"notebook": "<b>x</b>"}})
    outputs = nb.cells[4].outputs
    shown = [output.get("data", {}) for output in outputs]
    assert all(set(data) <= {"text/plain", "image/png", "image/jpeg"} for data in shown), shown
    plain = "\n".join(data.get("text/plain", "") for data in shown)
    for payload in ("<script>alert(1)</script><b>bold</b>", "alert(2)", "<svg><script>alert(3)",
                    "<img src=x onerror=alert(4)>", "javascript:alert(5)", "IntSlider(value=3)",
                    '"><script>alert(6)'):
        assert payload in plain, payload  # shown as text (the template escapes text/plain)
    assert "   a\n0  1" in plain and "<table>" not in plain, "a useful text/plain wins over HTML"
    assert shown[7]["image/png"] == PNG and outputs[7]["metadata"] == {"image/png": {"height": 10}}
    assert nb.cells[4].metadata == {} and nb.metadata == {"kernelspec": graded_notebook().metadata.kernelspec}
    assert nb.cells[-1].cell_type == "markdown" and "&lt;script&gt;" in nb.cells[-1].source
    assert resources["should_sanitize_html"] is True and resources["nbgrader"]["notebook"] == "&lt;b&gt;x&lt;/b&gt;"


def test_sanitising_twice_changes_nothing():
    """The formgrader's exporter and the feedback's list both run SanitizeFeedback."""
    once, resources = SanitizeFeedback().preprocess(graded_notebook(), {"student": "<b>"})
    twice, again = SanitizeFeedback().preprocess(copy.deepcopy(once), copy.deepcopy(resources))
    assert twice == once and again == resources
    crafted = '<div class="unet-feedback-markdown"><script>alert(1)</script></div>'
    assert "&lt;script&gt;" in safe_markdown(crafted), "only what bleach leaves as it is counts as done"


def test_unsafe_grade_id_is_escaped():
    nb = graded_notebook()
    nb.cells[1].metadata["nbgrader"]["grade_id"] = '"><script>alert(1)</script>'
    nb, _ = SanitizeFeedback().preprocess(nb, {})
    assert nb.cells[1].metadata["nbgrader"]["grade_id"] == "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"


def test_feedback_page_is_inert_and_readable():
    exporter = _exporter(SafeFeedbackExporter, [_FakeGrades, TestSummaries, SanitizeFeedback])
    page, _ = exporter.from_notebook_node(graded_notebook(), {})
    assert not live_content(page), live_content(page)
    assert not grep_clean(page), grep_clean(page)
    assert MARKER not in page and "square(-2)" not in page and "BEGIN HIDDEN" not in page
    text = text_of(page)
    for shown in ("square_check", "Score: 0.0 / 1.0", "AssertionError: square(3) should be 9",
                  "failed (0 of 1 point)", "other_check", "passed (2 of 2 points)",
                  "<script>alert(1)</script><b>bold</b>", '<img src=x onerror="alert(9)">',
                  "well done", "def square(x):"):
        assert shown in text, shown
    assert "src=\"data:image/png;base64," + PNG in page


def test_preprocessors_alone_leave_only_the_templates_mathjax():
    """Each layer holds on its own: with nbgrader's own exporter, the only scripts left are
    the two MathJax tags of nbgrader's template."""
    from nbconvert.exporters import HTMLExporter

    exporter = _exporter(HTMLExporter, [_FakeGrades, TestSummaries, SanitizeFeedback])
    page, _ = exporter.from_notebook_node(graded_notebook(), {})
    scripts = [attrs for tag, attrs in _Elements(page).tags if tag == "script"]
    assert [s.get("src", s.get("type")) for s in scripts] == [
        "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe",
        "text/x-mathjax-config"]
    assert not [item for item in live_content(page) if not item.startswith("<script")]


class _Scripts(HTMLParser):
    """The script elements of a page: (src, inline text)."""

    def __init__(self, page: str):
        super().__init__()
        self.scripts: list[list[str]] = []
        self._inside = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append([dict(attrs).get("src") or "", ""])
            self._inside = True

    def handle_endtag(self, tag):
        self._inside = self._inside and tag != "script"

    def handle_data(self, data):
        if self._inside:
            self.scripts[-1][1] += data


def test_formgrader_view_of_a_submission_runs_none_of_it():
    """The instructor's formgrader renders autograded notebooks with nbconvert's HTMLExporter
    and the course config: the submission's content must not run there either."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT)).load_config()
    config.HTMLExporter.template_name = "formgrade"  # what FormgradeExtension adds
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    resources = {"assignment_id": EXAMPLE, "notebook_id": EXAMPLE, "submission_id": "1", "index": 0,
                 "total": 1, "base_url": "/hub", "student": '<img src=x onerror="alert(15)">',
                 "last_name": None, "first_name": None, "notebook_path": "x"}
    page, _ = HTMLExporter(config=config).from_notebook_node(graded_notebook(), resources=resources)
    for src, inline in _Scripts(page).scripts:  # only the formgrader's own scripts
        assert "alert(" not in inline and "alert(" not in src, (src, inline)
        assert not src or src.startswith(("/hub/formgrader/static/", "https://cdnjs.cloudflare.com/")), src
    for tag, attrs in _Elements(page).tags:  # the template's own handlers call toggle_name()
        assert tag not in {"iframe", "object", "embed", "svg", "math", "base"}, tag
        for name, value in attrs.items():
            assert not (name.startswith("on") and "toggle_name(" not in value), (tag, name, value)
            assert not re.sub(r"[\x00-\x20]", "", value).lower().startswith(("javascript:", "data:text")), value
    text = text_of(page)
    for shown in ("<script>alert(1)</script><b>bold</b>", '<img src=x onerror="alert(9)">',
                  '<img src=x onerror="alert(15)">', f"# {MARKER}"):  # the instructor sees the tests
        assert shown in text, shown


def test_inert_page_removes_what_runs():
    page = grading_feedback.inert_page(
        '<html><head><meta http-equiv="refresh" content="0;url=javascript:alert(1)"><base href="http://x/">'
        '<script>alert(2)</script></head><body><a href=" jav&#x09;ascript:alert(3)" onclick="x()">a</a>'
        '<img src="http://tracker/x.png"><form action="http://x"><button formaction="javascript:y">b'
        '</button></form><p>text onerror=1 javascript:2</p></body></html>')
    assert not live_content(page) and not grep_clean(page)
    assert "text onerror=1 javascript:2" in text_of(page)


def test_config_uses_the_feedback_preprocessors():
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT)).load_config()
    assert loaded.GenerateFeedback.preprocessors == [grading_feedback.GetGradesAndPending, TestSummaries,
                                                     SanitizeFeedback, CSSHTMLHeaderPreprocessor]
    assert issubclass(grading_feedback.GetGradesAndPending, GetGrades)
    assert loaded.GenerateFeedback.exporter_class is SafeFeedbackExporter
    assert loaded.ZipCollectApp.extractor_plugin is grading_feedback.SafeExtractorPlugin


# --- unit tests: downloaded archives -----------------------------------------------------

LESSONS = [EXAMPLE, "03_loss_and_metrics"]
NOTEBOOK = nbformat.writes(new_notebook(cells=[new_code_cell("x = 1")])).encode()


@pytest.mark.parametrize("name,student", [
    ("alice.zip", "alice"), (f"alice_{EXAMPLE}.zip", "alice"), (f"alice-{EXAMPLE}.ZIP", "alice"),
    (f"yann_le_{EXAMPLE}.zip", "yann_le"), ("bob_12.zip", "bob_12"), (f"{EXAMPLE}.zip", None),
    (".hidden.zip", None), ("a<b.zip", None), ("x\x1b[31m.zip", None)])
def test_the_student_an_archive_is_named_for(name, student):
    assert grading_feedback.archive_student(name, LESSONS) == student


def test_the_student_a_notebook_is_named_for():
    owner = grading_feedback.notebook_owner
    assert owner(f"yann_le_{EXAMPLE}.ipynb", LESSONS) == ("yann_le", EXAMPLE)
    assert owner(f"{EXAMPLE}.ipynb", LESSONS) == ("", EXAMPLE)
    assert owner("yann_le_99_other.ipynb", LESSONS) is None and owner(f"{EXAMPLE}.py", LESSONS) is None


def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def _stage(tmp_path, *files):
    staged = tmp_path / "staged"
    messages = stage_downloads(files, LESSONS, [EXAMPLE], lambda lesson: staged / lesson)
    found = sorted(str(p.relative_to(staged)) for p in staged.rglob("*.ipynb")) if staged.exists() else []
    return found, messages


@pytest.mark.parametrize("member", [f"bob/{EXAMPLE}.ipynb", f"bob_{EXAMPLE}.ipynb",
                                    f"work/bob/{EXAMPLE}.ipynb", f"bob-{EXAMPLE}.ipynb"])
@pytest.mark.parametrize("archive_name", ["alice.zip", f"alice_{EXAMPLE}.zip"])
def test_archive_carrying_another_students_notebook_is_refused(tmp_path, archive_name, member):
    archive = make_zip(tmp_path / archive_name, {member: NOTEBOOK})
    found, messages = _stage(tmp_path, archive)
    assert found == [], "nobody may get a notebook that names someone else than the archive's student"
    assert len(messages) == 1
    message = messages[0]
    assert archive_name in message and "'alice'" in message and member in message
    assert "bob" in message or "work" in message
    assert "put it at the top of the archive" in message  # the fix


@pytest.mark.parametrize("member", [f"{EXAMPLE}.ipynb", f"alice/{EXAMPLE}.ipynb", f"alice_{EXAMPLE}.ipynb",
                                    f"{EXAMPLE}/{EXAMPLE}.ipynb", f"alice_{EXAMPLE}/{EXAMPLE}.ipynb"])
@pytest.mark.parametrize("archive_name", ["alice.zip", f"alice_{EXAMPLE}.zip", f"alice-{EXAMPLE}.zip"])
def test_archive_with_the_students_own_notebook_is_collected(tmp_path, archive_name, member):
    archive = make_zip(tmp_path / archive_name, {member: NOTEBOOK, "__MACOSX/._x": b"junk",
                                                 "notes.txt": b"hello", "03_loss_and_metrics.ipynb": b"{}"})
    found, messages = _stage(tmp_path, archive)
    assert found == [f"{EXAMPLE}/alice/{EXAMPLE}.ipynb"] and messages == []
    assert (tmp_path / "staged" / EXAMPLE / "alice" / f"{EXAMPLE}.ipynb").read_bytes() == NOTEBOOK


def test_other_archives_are_still_collected(tmp_path):
    good = make_zip(tmp_path / "carol.zip", {f"{EXAMPLE}.ipynb": NOTEBOOK})
    bad = make_zip(tmp_path / "alice.zip", {f"bob/{EXAMPLE}.ipynb": NOTEBOOK, f"{EXAMPLE}.ipynb": NOTEBOOK})
    loose = tmp_path / f"dave_{EXAMPLE}.ipynb"
    loose.write_bytes(NOTEBOOK)
    found, messages = _stage(tmp_path, good, bad, loose)
    assert found == [f"{EXAMPLE}/alice/{EXAMPLE}.ipynb", f"{EXAMPLE}/carol/{EXAMPLE}.ipynb",
                     f"{EXAMPLE}/dave/{EXAMPLE}.ipynb"]
    assert len(messages) == 1 and "bob" in messages[0]


@pytest.mark.parametrize("member", [f"../../escaped/{EXAMPLE}.ipynb", f"/tmp/escaped/{EXAMPLE}.ipynb",
                                    f"alice/../../{EXAMPLE}.ipynb", f"..\\..\\{EXAMPLE}.ipynb",
                                    f"C:/escaped/{EXAMPLE}.ipynb"])
def test_path_traversal_member_is_refused(tmp_path, member):
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    archive = make_zip(work / "alice.zip", {member: NOTEBOOK})
    contents = read_archive(archive, LESSONS)
    assert contents.notebooks == {}
    assert len(contents.messages) == 1 and "absolute path or '..'" in contents.messages[0]
    assert "alice.zip" in contents.messages[0]
    staged = work / "staged"
    assert stage_downloads([archive], LESSONS, [EXAMPLE], lambda lesson: staged / lesson)
    assert not list(tmp_path.rglob("escaped")) and not staged.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["alice.zip", "deep", "er"]


def test_symlink_member_is_refused(tmp_path):
    archive = make_zip(tmp_path / "alice.zip", {}, symlinks={f"{EXAMPLE}.ipynb": "/etc/passwd",
                                                             "link": "../../answers"})
    contents = read_archive(archive, LESSONS)
    assert contents.notebooks == {}
    assert len(contents.messages) == 2 and all("symbolic link" in m for m in contents.messages)


def test_oversized_member_is_refused(tmp_path):
    bomb = make_zip(tmp_path / "alice.zip", {f"{EXAMPLE}.ipynb": b"0" * 5_000_000})
    assert bomb.stat().st_size < 50_000, "a zip bomb: small archive, big member"
    contents = read_archive(bomb, LESSONS, max_bytes=1_000_000)
    assert contents.notebooks == {} and "5000000 bytes unpacked" in contents.messages[0]


def test_lying_size_header_cannot_unpack_more(tmp_path, monkeypatch):
    """A member whose header claims a small size is never read past that size."""
    archive = make_zip(tmp_path / "alice.zip", {f"{EXAMPLE}.ipynb": b"0" * 3_000_000})
    real_infolist = zipfile.ZipFile.infolist

    def lying_infolist(self):
        infos = real_infolist(self)
        for info in infos:
            info.file_size = 100  # the header claims a tiny member
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying_infolist)
    contents = read_archive(archive, LESSONS, max_bytes=1_000)
    assert contents.notebooks == {} and contents.messages


def test_archive_names_and_odd_contents(tmp_path):
    nameless = make_zip(tmp_path / f"{EXAMPLE}.zip", {f"{EXAMPLE}.ipynb": NOTEBOOK})
    nested = make_zip(tmp_path / "erin.zip", {"inner.zip": b"PK", f"{EXAMPLE}.ipynb": NOTEBOOK})
    double = make_zip(tmp_path / "frank.zip", {f"{EXAMPLE}.ipynb": NOTEBOOK, f"frank/{EXAMPLE}.ipynb": NOTEBOOK})
    untitled = make_zip(tmp_path / "gina.zip", {"Untitled.ipynb": NOTEBOOK})
    found, messages = _stage(tmp_path, nameless, nested, double, untitled)
    assert found == [f"{EXAMPLE}/erin/{EXAMPLE}.ipynb"]
    text = "\n".join(messages)
    assert f"{EXAMPLE}.zip: not collected: its name names no student" in text
    assert "erin.zip: not extracted 'inner.zip'" in text
    assert "frank.zip: refused 00_example: 2 notebooks" in text
    assert "gina.zip: skipped 'Untitled.ipynb'" in text


def test_two_downloads_for_one_lesson_are_both_refused(tmp_path):
    archive = make_zip(tmp_path / "alice.zip", {f"{EXAMPLE}.ipynb": NOTEBOOK})
    loose = tmp_path / f"alice_{EXAMPLE}.ipynb"
    loose.write_bytes(NOTEBOOK)
    found, messages = _stage(tmp_path, archive, loose)
    assert found == [] and "2 downloads hand it in" in messages[0]


# --- nbgrader end to end (slow) ----------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A released course root with the example lesson, whose hidden tests carry MARKER."""
    root = tmp_path_factory.mktemp("feedback_course")
    (root / "nbgrader_config.py").write_text((REPO_ROOT / "nbgrader_config.py").read_text() + TEST_CONFIG)
    shutil.copytree(FIXTURES / EXAMPLE, root / "answers" / EXAMPLE)
    answers = nbformat.read(root / "answers" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    for cell in answers.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            cell.source = cell.source.replace("### END HIDDEN TESTS", f"# {MARKER} hidden line\n### END HIDDEN TESTS")
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "mean_check":
            cell.source = cell.source.replace("assert mean([5]) == 5", f"assert mean([5]) == 5  # {MARKER}")
    nbformat.write(answers, root / "answers" / EXAMPLE / f"{EXAMPLE}.ipynb")
    assert grading.release(root=root, quiet=True) == 0
    return root


def _solution(nb, grade_id: str, source: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source


HOSTILE_CODE = f'''from IPython.display import display, HTML, Javascript, SVG, Markdown, Latex, Image
import base64
display(HTML("<script>alert('html')</script><img src=x onerror=alert('img')>"))
display(HTML('<a href="javascript:alert(1)">link</a>'))
display(Javascript("alert('js')"))
display(Javascript("document.body.innerHTML = ''"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(3)"><text>x</text></a></svg>'))
display(Markdown("[x](javascript:alert(4)) <img src=x onerror=alert(5)>"))
display(Latex(r"$\\href{{javascript:alert(6)}}{{x}}$"))
display({{"image/png": '"><script>alert(7)</script>', "text/plain": "fake"}}, raw=True)
display(Image(data=base64.b64decode("{PNG}"), width="1 onerror=alert(8)"))
display({{"application/vnd.jupyter.widget-view+json": {{"model_id": "</script><script>alert(9)"}}}}, raw=True)
'''


@pytest.fixture(scope="module")
def feedback_pages(course) -> dict[str, str]:
    """Feedback pages of a hostile student and of the answers, through the real nbgrader."""
    from helpers.grading import sandbox

    answers = nbformat.read(course / "answers" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    release = nbformat.read(course / "notebooks" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    hostile = copy.deepcopy(answers)
    _solution(hostile, "mean", "def mean(values):\n    return 2.0  # passes the visible check only")
    _solution(hostile, "count_vowels", "def count_vowels(text):\n    return 0")
    hostile.cells.insert(3, new_code_cell(HOSTILE_CODE))
    hostile.cells.insert(3, new_markdown_cell("\n\n".join(HOSTILE_MARKDOWN)))
    hostile.cells.append(new_code_cell("print(In)\nprint(_ih[-3])"))
    hostile.cells.append(new_raw_cell("<script>alert('raw')</script>", metadata={"raw_mimetype": "text/html"}))
    hostile.cells[0].metadata["tags"] = ['"><script>alert(1)</script>']
    hostile.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"a": "</script><script>x()"}}
    for student, nb in (("hacker", hostile), ("answers", answers), ("blank", release)):
        folder = course / "submissions" / student / EXAMPLE
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{EXAMPLE}.ipynb")
    assert grading.collect(course / "submissions", root=course, quiet=True) == 0
    try:
        sandbox.check_available()
        sandboxed = True
    except sandbox.SandboxUnavailable:
        sandboxed = False  # the hostile code only displays outputs
    assert grading.autograde(root=course, quiet=True, sandboxed=sandboxed,
                             env={"UNET_COURSE_SCALE": "0.1"}) == 0
    graded = nbformat.read(course / "autograded" / "hacker" / EXAMPLE / f"{EXAMPLE}.ipynb", as_version=4)
    assert MARKER in json.dumps(graded), "the autograded notebook must carry the hidden tests (else the test proves nothing)"
    assert grading.feedback(root=course, quiet=True) == 0
    return {student: (course / "feedback" / student / EXAMPLE / f"{EXAMPLE}.html").read_text()
            for student in ("hacker", "answers", "blank")}


@pytest.mark.slow
def test_feedback_shows_no_test_source(feedback_pages):
    for student, page in feedback_pages.items():
        assert MARKER not in page, f"{student}: a hidden test line is in the feedback"
        for secret in ("BEGIN HIDDEN TESTS", "square(-2)", "mean([5])", 'count_vowels("U-NET")'):
            assert secret not in page, f"{student}: {secret!r} is in the feedback"
        if student == "answers":  # (the blank release and the hacker raise in their own cells:
            # the tracebacks of those cells stay; a test's never shows)
            assert "Traceback (most recent call last)" not in page, f"{student}: a test's traceback is shown"
        assert "grading_runner" not in page and "site-packages" not in page, \
            f"{student}: a traceback shows the grader's own frames"
        # not the visible checks either: all test source is hidden
        assert 'count_vowels("segmentation") == 5' not in text_of(page)


@pytest.mark.slow
def test_feedback_shows_results_points_and_messages(feedback_pages):
    text = text_of(feedback_pages["hacker"])
    # nbgrader's own total counts the written answer (1 point, not graded yet); the course's
    # score line states the automatic points apart
    for shown in ("square_check", "mean_check", "count_vowels_check", "Score: 1.0 / 6.0",
                  "Automatic checks: 1 of 5 points. Written answers, graded by hand: 0 of 1 point, "
                  "1 of them not graded yet.", "mean_written: not graded yet (1 point",
                  "passed (1 of 1 point)", "failed (0 of 2 points)",
                  "AssertionError: segmentation has 5 vowels"):
        assert shown in text, shown
    # the hidden test failed with a bare assert: its type, nothing of its line
    assert re.search(r"failed \(0 of 2 points\)\nAssertionError\n", text), text
    answers = text_of(feedback_pages["answers"])
    assert answers.count("passed (") == 3 and "Score: 5.0 / 6.0" in answers
    assert "Automatic checks: 5 of 5 points." in answers
    blank = text_of(feedback_pages["blank"])
    assert "Written answers, graded by hand: 0 of 1 point." in blank, "a blank answer needs no grader"
    assert "def square(x):" in answers, "the student's own code is shown"


@pytest.mark.slow
def test_feedback_of_a_hostile_submission_runs_nothing(feedback_pages):
    page = feedback_pages["hacker"]
    assert not live_content(page), live_content(page)
    assert not grep_clean(page), grep_clean(page)
    text = text_of(page)
    for payload in ("<script>alert('html')</script>", "alert('js')", '<img src=x onerror="alert(1)">',
                    "[x](javascript:alert(4))", "<script>alert('raw')</script>"):
        assert payload in text, f"{payload!r} should be shown as text"
    for page in feedback_pages.values():
        assert "<link" not in page and 'src="http' not in page, "the page must be self-contained"


@pytest.mark.slow
def test_collect_accepts_a_zip_only_for_its_student(course, tmp_path, capsys):
    notebook = (course / "notebooks" / EXAMPLE / f"{EXAMPLE}.ipynb").read_bytes()
    make_zip(tmp_path / "zara.zip", {f"{EXAMPLE}.ipynb": notebook})
    make_zip(tmp_path / "mallory.zip", {f"bob/{EXAMPLE}.ipynb": notebook})
    make_zip(tmp_path / f"trudy_{EXAMPLE}.zip", {f"bob_{EXAMPLE}.ipynb": notebook})
    make_zip(tmp_path / "eve.zip", {f"../../../submitted/bob/{EXAMPLE}/{EXAMPLE}.ipynb": notebook},
             symlinks={f"{EXAMPLE}.ipynb": "/etc/passwd"})
    (tmp_path / f"yves_{EXAMPLE}.ipynb").write_bytes(notebook)
    capsys.readouterr()
    assert grading.collect(tmp_path, [EXAMPLE], root=course, quiet=True) == 0
    err = capsys.readouterr().err
    submitted = course / "submitted"
    for student in ("zara", "yves"):
        assert (submitted / student / EXAMPLE / f"{EXAMPLE}.ipynb").read_bytes() == notebook, student
    for student in ("bob", "mallory", "trudy", "eve"):
        assert not (submitted / student).exists(), f"{student} got a notebook from someone else's archive"
    assert "mallory.zip: refused 'bob/00_example.ipynb': the archive is named for 'mallory'" in err
    assert f"trudy_{EXAMPLE}.zip: refused 'bob_00_example.ipynb'" in err
    assert "eve.zip" in err and "symbolic link" in err and "'..'" in err
    assert not (course.parent / "submitted").exists() and not (tmp_path.parent / "submitted").exists()
    with grading.gradebook(course) as gb:
        known = {student.id for student in gb.students}
    assert {"zara", "yves"} <= known and not {"bob", "trudy", "eve"} & known


@pytest.mark.slow
def test_plain_nbgrader_zip_collect_follows_the_same_rule(course):
    notebook = (course / "notebooks" / EXAMPLE / f"{EXAMPLE}.ipynb").read_bytes()
    archive = course / "downloaded" / EXAMPLE / "archive"
    if archive.exists():
        shutil.rmtree(archive)
    archive.mkdir(parents=True)
    make_zip(archive / "oscar.zip", {f"{EXAMPLE}.ipynb": notebook})
    make_zip(archive / "peggy.zip", {f"victor/{EXAMPLE}.ipynb": notebook, f"../{EXAMPLE}.ipynb": notebook})
    assert grading.run_nbgrader(["zip_collect", EXAMPLE, "--force"], course, quiet=True) == 0
    assert (course / "submitted" / "oscar" / EXAMPLE / f"{EXAMPLE}.ipynb").is_file()
    assert not (course / "submitted" / "victor").exists() and not (course / "submitted" / "peggy").exists()
    assert not (course / "downloaded" / EXAMPLE / f"{EXAMPLE}.ipynb").exists()
