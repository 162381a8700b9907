"""nbgrader configuration of the course (read by every ``nbgrader`` command run here).

The course root is the folder of this file (the repository). Lessons are assignments:

    answers/<lesson>/<lesson>.ipynb        source: solutions and hidden tests (committed)
    notebooks/<lesson>/<lesson>.ipynb      release: what students get (committed, generated)
    submitted/<student>/<lesson>/          collected submissions  (git-ignored)
    autograded/<student>/<lesson>/         executed and scored    (git-ignored)
    feedback/<student>/<lesson>/           HTML feedback          (git-ignored)
    gradebook.db                           the SQLite gradebook   (git-ignored)

Use it through ``python -m helpers release|collect|autograde|feedback|export`` (or the
``make`` targets of the same names), or with plain ``nbgrader`` commands from this folder.
A copy of this file in another folder makes that folder a course root (the tests do this).
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

# --- Course directory -------------------------------------------------------------------
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "unet-course"
c.CourseDirectory.source_directory = "answers"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# Lessons carry no data files; never copy checkpoints or caches into the release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# --- Generating the release ---------------------------------------------------------------
# What a student sees in place of "### BEGIN SOLUTION ... ### END SOLUTION".
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# No header notebook, and the release must be reproducible from answers/ (tests compare it).
c.GenerateAssignment.create_assignment = True

# --- Autograding ------------------------------------------------------------------------
# Per-cell time limit in seconds. nbgrader's default (30 s) would kill the training cells;
# 900 s leaves room for the slowest lesson cell on a busy laptop CPU.
c.Execute.timeout = 900
# On a timeout the grading runner stops the cell with a CellTimeoutError (its test scores 0)
# and goes on with the next cell and the next student; a cell that ignores every signal is
# replaced by one that raises and the submission is graded again.
c.Execute.interrupt_on_timeout = True
# Runner: every submission runs in the course's grading runner (helpers/grading/runner.py,
# no Jupyter kernel; see the sandbox section below) with the course kernel settings
# (helpers.tools.kernels.kernel_env) plus quiet warnings and progress bars
# (helpers.grading.sandbox.GRADING_ENV): nbgrader 0.9 scores a test cell 0 when it writes
# anything to stderr, not only when it raises.
# Restore graded test cells that a student deleted (they run with the original source).
c.OverwriteCells.add_missing_cells = True

# --- Collecting downloaded files (nbgrader zip_collect, via `python -m helpers collect`) ---
# Files below downloaded/<lesson>/archive/ (zips are extracted) are matched by
#   .../<student>/<lesson>.ipynb   or   .../<student>_<lesson>.ipynb
c.FileNameCollectorPlugin.named_regexp = (
    r"^.*[\\/](?P<student_id>[^\\/]+?)[\\/_-](?P<file_id>\d\d_[A-Za-z0-9_]+\.ipynb)$"
)
c.ZipCollectApp.strict = True  # skip notebooks of other lessons instead of copying them
# An archive is one student's: alice.zip or alice_<lesson>.zip holds alice's notebook, and a
# notebook inside whose path names anyone else (bob/<lesson>.ipynb, bob_<lesson>.ipynb) is
# refused, as are members with absolute paths or '..', symbolic links and oversized members.
# `python -m helpers collect` applies this itself (helpers.grading.feedback.stage_downloads);
# this plugin applies it to a plain `nbgrader zip_collect` as well.
from helpers.grading.feedback import SafeExtractorPlugin  # noqa: E402

c.ZipCollectApp.extractor_plugin = SafeExtractorPlugin

# --- JupyterHub with the formgrader (see README, "Instructor guide") -------------------
# On a shared hub, point the exchange at a folder every user can reach, e.g.
#   c.Exchange.root = "/srv/nbgrader/exchange"
# and keep this file in the instructor's course root.

# --- Grading sandbox and guards (helpers/grading/execute.py) -----------------------------
# Every submission runs in the course's grading runner inside bubblewrap: no access to
# answers/, gradebook.db, other submissions or the network; helpers/ read-only; the checks
# restored before every test cell. Grading stops where no sandbox is available, unless
# UNET_COURSE_NO_SANDBOX=1 (python -m helpers autograde --no-sandbox) accepts the risk.
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades)
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402

from helpers.grading.execute import GradingExecute, KeepSubmittedOutputs  # noqa: E402

# nbgrader's own sanitize steps, after KeepSubmittedOutputs: GradingExecute does not run the
# cells after a notebook's last graded code cell (they cannot change a score) and shows the
# outputs the learner handed in there instead, under a line that says so (--all-cells runs them).
from nbgrader.preprocessors import ClearOutput, DeduplicateIds, OverwriteCells, OverwriteKernelspec  # noqa: E402

c.Autograde.sanitize_preprocessors = [KeepSubmittedOutputs, ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                      OverwriteCells, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [GradingExecute, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]

# --- Feedback (nbgrader generate_feedback, python -m helpers feedback, the formgrader) ------
# Feedback pages leak nothing and run nothing (helpers/grading/feedback.py): each test cell
# shows its grade_id, points, passed/failed and for a failure only the error's type and
# message, never its source (hidden tests included) or traceback; outputs other than text
# and PNG/JPEG images, markdown and metadata from the submission are escaped or cleaned; the
# page has no script (nbgrader's template loads MathJax: formulas stay as TeX text).
# Written answers (manually graded solution cells) get a note with their points, "not graded
# yet" until an instructor grades them in the formgrader, apart from the automatic score.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402

from helpers.grading.feedback import (  # noqa: E402
    GetGradesAndPending, SafeFeedbackExporter, SanitizeFeedback, TestSummaries)

c.GenerateFeedback.preprocessors = [GetGradesAndPending, TestSummaries, SanitizeFeedback,
                                    CSSHTMLHeaderPreprocessor]
c.GenerateFeedback.exporter_class = SafeFeedbackExporter
# The formgrader shows each autograded notebook to the instructor with nbconvert's
# HTMLExporter: the same sanitiser keeps a submission's HTML, JavaScript, SVG and markdown
# from running there, in the instructor's Jupyter session (test source stays visible).
c.HTMLExporter.preprocessors = [SanitizeFeedback]
