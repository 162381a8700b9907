"""Tests for helpers/tools/results.py: ``python -m helpers course --record`` and the results page."""

from __future__ import annotations

import json
import platform
import shutil

import nbformat
import pytest
from support.course import REPO_ROOT

from helpers.course import LESSONS
from helpers.tools import results


def test_compute_phrase_rounds_to_half_minutes():
    assert results.compute_phrase(59) == "under a minute"
    assert results.compute_phrase(60) == "~1 min"
    assert results.compute_phrase(119) == "~2 min"
    assert results.compute_phrase(340) == "~5.5 min"


def test_update_time_line_changes_only_the_compute_part():
    header = "# 04 · Training\n\n**Time** — about 50 min in class, ~2 min of compute on a laptop CPU.\n"
    assert results.update_time_line(header, 200) == header.replace("~2 min", "~3.5 min")
    assert results.update_time_line(header, 30) == header.replace("~2 min", "under a minute")
    with pytest.raises(ValueError, match="Time"):
        results.update_time_line("# 04 · Training\n", 200)


def _report(name, seconds, **metrics):
    return {"lesson": name, "elapsed_seconds": seconds, "scale": 1.0, "metrics": metrics}


def test_merge_adds_a_whole_course_run_only_for_the_default_lessons():
    context = {"cpus": 2, "load_average": [0.1, 0.2, 0.3]}
    default = [spec.folder for spec in LESSONS if spec.in_default_run]
    everything = {name: _report(name, 10.0) for name in default}
    merged = results.merge_reports({"lessons": {}, "courses": []}, everything, context, "2026-01-01", 95.0)
    assert len(merged["courses"]) == 1 and merged["courses"][0]["seconds"] == 95.0
    one = results.merge_reports(merged, {"04_training": _report("04_training", 130.0, test_dice=0.96)},
                                context, "2026-01-02", 140.0)
    assert len(one["courses"]) == 1, "a single lesson is not a whole-course run"
    assert one["lessons"]["04_training"]["seconds"] == 130.0 and one["lessons"]["04_training"]["recorded"] == "2026-01-02"
    assert one["lessons"]["01_data_generator"]["recorded"] == "2026-01-01", "other lessons keep their run"


def test_rendered_page_marks_bars_and_budgets():
    context = {"cpus": 2, "load_average": [0.1, 0.2, 0.3]}
    merged = results.merge_reports({"lessons": {}, "courses": []},
                                   {"04_training": _report("04_training", 400.0, test_dice=0.94)},
                                   context, "2026-01-01", None)
    page = results.render_markdown(merged)
    assert "| 04_training | 400 **over budget** | 5 min | test_dice 0.940 (bar 0.95 ✗ below)" in page
    assert "| 01_data_generator | — | 5 min | not recorded yet" in page
    assert page == results.render_markdown(merged), "rendering is deterministic"


def test_record_writes_json_page_and_time_lines(tmp_path):
    answers = tmp_path / "answers"
    shutil.copytree(REPO_ROOT / "answers" / "04_training", answers / "04_training")
    results_json, page = tmp_path / "results.json", tmp_path / "results.md"
    changed = results.record({"04_training": _report("04_training", 275.0, test_dice=0.97)}, None,
                             answers_dir=answers, results_path=results_json, markdown_path=page, when="2026-01-03")
    assert changed == ["04_training"]
    header = nbformat.read(answers / "04_training" / "04_training.ipynb", as_version=4).cells[0].source
    assert "in class, ~4.5 min of compute" in header
    recorded = json.loads(results_json.read_text())
    assert recorded["lessons"]["04_training"]["metrics"] == {"test_dice": 0.97}
    assert page.read_text() == results.render_markdown(recorded)
    assert results.record({"04_training": _report("04_training", 275.0, test_dice=0.97)}, None, answers_dir=answers,
                          results_path=results_json, markdown_path=page) == [], "same time: nothing to change"


def test_a_corrupt_results_file_is_named(tmp_path):
    broken = tmp_path / "results.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="results.json"):
        results.read_results(broken)


def test_numerics_note_the_cpu_instructions_and_threads_and_only_an_equal_record_matches(monkeypatch):
    """A record reproduces bit for bit only on the same vector instruction sets and TensorFlow
    threads: the context says both, and same_numerics compares them (an old record without
    them never matches)."""
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    here = results.numerics()
    assert here["threads"] == "1"
    assert here["cpu_features"].split()[0] == platform.machine()
    assert "cpu_features" in results.machine_context() and results.machine_context()["threads"] == "1"
    assert results.same_numerics({**here, "cpus": 2, "jobs": 2}) is ("unknown" not in here["cpu_features"])
    assert not results.same_numerics({**here, "threads": "2"})
    assert not results.same_numerics({**here, "cpu_features": here["cpu_features"] + " avx_imaginary"})
    assert not results.same_numerics({"cpus": 2, "jobs": 2})   # recorded before numerics were noted
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert results.numerics()["threads"] == "all"
