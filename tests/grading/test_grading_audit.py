"""Unit tests of helpers/grading/audit.py: the integrity audit and the metadata repair.

The audit must flag every kind of tampering a solution cell can try (IPython syntax included,
and the reference of an exercise reached in any way), and must never flag the answer notebooks
or ordinary correct solutions (the corpus of legitimate variants below); the repair must give
every cell back the release's nbgrader metadata.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest
from support.course import ANSWER_LESSONS, FIXTURES, REPO_ROOT

from helpers.grading import audit as grading_audit

ALIASES = {"checks", "metrics", "losses", "models", "generator", "data", "training", "config", "slices"}

CHEATS = {
    "transformer": ("get_ipython().input_transformers_cleanup.append(lambda lines: [])", "IPython"),
    "rebind checks": ("class Q:\n    def __getattr__(self, n):\n        return print\nchecks = Q()", "rebinds `checks`"),
    "patch checks": ("import helpers.checks as hc\nhc.check_dice = print", "attribute of `hc`"),
    "patch submodule": ("from helpers.checks import metrics as m\nm.check_iou = print", "attribute of `m`"),
    "setattr checks": ("setattr(checks, 'check_dice', print)", "indirectly"),
    "globals": ("globals()['checks'] = None", "indirectly"),
    "call reference": ("def dice_coefficient(t, p, smooth=1.0):\n    return metrics.dice_coefficient(t, p, smooth)",
                       "calls the reference"),
    "call reference_": ("def select_slices(mask, empty_fraction=0.1, rng=None):\n"
                        "    return checks.reference_select_slices(mask, empty_fraction, rng)", "calls the reference"),
    "call lesson 07 reference": ("def select_slices(mask, empty_fraction=0.1, rng=None):\n"
                                 "    return slices.select_slices(mask, empty_fraction, rng)", "calls the reference"),
    "subclass reference": ("class D(generator.SegmentationDataset):\n    pass", "inherits from the reference"),
    "exec answers": ("exec(open('../../../answers/03/03.ipynb').read())", "exec"),
    "eval": ("eval('1 + 1')", "eval"),
    "compile": ("code = compile('x = 1', 'f', 'exec')", "compile"),
    "sqlite": ("import sqlite3\nsqlite3.connect('gradebook.db')", "database"),
    "gradebook path": ("path = '../../../gradebook.db'", "grader's files"),
    "kill parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "signals"),
    "os._exit": ("import os\nos._exit(0)", "os._exit"),
    "from os import _exit": ("from os import _exit\n_exit(0)", "os._exit"),
    "sigint": ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)", "signal"),
    "subprocess": ("import subprocess\nsubprocess.run(['ls'])", "processes"),
    "os.system": ("import os\nos.system('ls')", "shell"),
    "shell escape": ("!cat /etc/passwd", "shell command"),
    "magic": ("%%bash\nls", "magic"),
    "builtins": ("import builtins\nbuiltins.abs = lambda x: 0", "builtins"),
    "sys.modules": ("import sys\nsys.modules['helpers.checks'] = None", "sys.modules"),
    "settrace": ("import sys\nsys.settrace(None)", "trace"),
    "code object": ("f.__code__ = g.__code__", "__code__"),
    "frames": ("import sys as s\nframe = s._getframe(1)", "frames"),
    "open helpers": ("open('/course/helpers/checks/__init__.py', 'a').write('x')", "open"),
    "inspect": ("import inspect\nsrc = inspect.getsource(metrics.dice_coefficient)", "inspect"),
    "del checks attr": ("del checks.check_dice", "attribute of `checks`"),
}

#: IPython syntax: read as IPython reads it (TransformerManager), never a reason to skip a cell.
IPYTHON_CHEATS = {
    "shell output assigned": ("x = !ls ../..", "shell command"),
    "shell escape indented": ("if True:\n    !cat /etc/passwd", "shell command"),
    "%sx": ("files = %sx ls", "%sx"),
    "%system": ("%system ls", "%system"),
    "%%bash": ("%%bash\nls", "%%bash"),
    "%%script": ("%%script bash\nls", "%%script"),
    "%%writefile": ("%%writefile helpers_patch.py\nx = 1", "%%writefile"),
    "%%python": ("%%python3\nimport os", "%%python3"),
    "%run": ("%run other_notebook.ipynb", "%run"),
    "%load_ext of a module": ("%load_ext my_extension", "extension 'my_extension'"),
    "x?? on the reference": ("metrics.dice_coefficient??", "source of the course's code"),
    "?x on the reference": ("?metrics.dice_coefficient", "source of the course's code"),
    "%time exec": ("%time exec('import os')", "exec"),
    "x = %time eval": ("x = %time eval('1 + 1')", "eval"),
    "%timeit with options": ("%timeit -n 1 -r 1 eval('1')", "eval"),
    "%%time body": ("%%time\nfor _ in range(1):\n    exec('x = 1')", "exec"),
    "%%timeit setup line": ("%%timeit -n 1 exec('x = 1')\npass", "exec"),
    "magic inside %%time": ("%%time\n%time exec('x = 1')", "exec"),
    "continued magic": ("%time \\\n    exec('x = 1')", "exec"),
    "indented magic": ("def f():\n    %time exec('x = 1')", "exec"),
    "%config runs its value": ("%config InlineBackend.rc = __import__('os').system('ls')", "__import__"),
    "{expression} in a magic": ("%matplotlib {exec('x = 1')}", "exec"),
    "{expression} in a shell command": ("!echo {eval('1')}", "eval"),
    "%%capture runs its body": ("%%capture out\nexec('x = 1')", "exec"),
    "%%capture itself": ("%%capture out\nx = 1", "%%capture"),
    "%prun runs its argument": ("%prun -s cumulative exec('x = 1')", "exec"),
    "autocall escape": ("/exec 'x = 1'", "exec"),
    "own get_ipython": ("def get_ipython():\n    return shell", "binds get_ipython"),
    "hand-written magic call": ("get_ipython().run_line_magic('time', \"exec('x')\")", "exec"),
    "no Python after transformation": ("f(x)??", "does not parse"),
    "no Python at all": ("def dice_coefficient(y_true, y_pred:\n    return 1", "does not parse"),
    "%time of code that does not parse": ("%time exec('x'", "does not parse"),
}

#: The graded name made to BE, WRAP or reach the reference of the same name, without calling
#: ``metrics.dice_coefficient`` from ``def dice_coefficient`` (name: source, reason expected).
GRADED = {"dice_coefficient", "select_slices"}
REFERENCE_CHEATS = {
    # the name is the reference
    "assignment": ("dice_coefficient = metrics.dice_coefficient", "binds dice_coefficient to the course's reference"),
    "assignment from a module alias": ("import helpers.metrics as m\ndice_coefficient = m.dice_coefficient",
                                       "binds dice_coefficient to the course's reference"),
    "import": ("from helpers.metrics import dice_coefficient", "binds dice_coefficient to the course's reference"),
    "import as, then bound": ("from helpers.metrics import dice_coefficient as d\nx = 1\ndice_coefficient = d",
                              "binds dice_coefficient to the course's reference"),
    "import of reference_": ("from helpers.checks import reference_select_slices as select_slices",
                             "binds select_slices to the course's reference"),
    "star import": ("from helpers.metrics import *", "import *` binds dice_coefficient"),
    "for target": ("for dice_coefficient in [metrics.dice_coefficient]:\n    pass", "binds dice_coefficient"),
    "walrus in a magic": ("%time (dice_coefficient := metrics.dice_coefficient)", "binds dice_coefficient"),
    # the name wraps the reference
    "functools.partial": ("import functools\ndice_coefficient = functools.partial(metrics.dice_coefficient, smooth=1)",
                          "binds dice_coefficient to the course's reference metrics.dice_coefficient"),
    "partial": ("from functools import partial\ndice_coefficient = partial(metrics.dice_coefficient)",
                "binds dice_coefficient to the course's reference"),
    "lambda": ("dice_coefficient = lambda a, b, smooth=1.0: metrics.dice_coefficient(a, b, smooth)",
               "binds dice_coefficient to the course's reference"),
    "lambda through an alias": ("m = metrics\ndice_coefficient = lambda *a: m.dice_coefficient(*a)",
                                "binds dice_coefficient to the course's reference"),
    "decorator returning the reference": ("def use(f):\n    return metrics.dice_coefficient\n\n@use\n"
                                          "def dice_coefficient(y_true, y_pred, smooth=1.0):\n    pass",
                                          "function dice_coefficient uses use"),
    "lambda decorator": ("@lambda f: metrics.dice_coefficient\ndef dice_coefficient(a, b):\n    pass",
                         "function dice_coefficient uses the course's reference"),
    "default argument": ("def dice_coefficient(a, b, smooth=1.0, f=metrics.dice_coefficient):\n    return f(a, b, smooth)",
                         "function dice_coefficient uses the course's reference"),
    # the name reaches the reference without spelling it as a call
    "getattr of a spelled-out name": ("dice_coefficient = getattr(metrics, 'dice_' + 'coefficient')",
                                      "helpers.metrics.dice_coefficient (through getattr"),
    "getattr in the function": ("def dice_coefficient(a, b, smooth=1.0):\n"
                                "    return getattr(metrics, f'dice_{\"coefficient\"}')(a, b, smooth)",
                                "calls the reference implementation helpers.metrics.dice_coefficient"),
    "getattr of a computed name": ("def dice_coefficient(a, b, smooth=1.0):\n"
                                   "    return getattr(metrics, 'tneiciffeoc_ecid'[::-1])(a, b, smooth)",
                                   "named at run time"),
    "module handed to attrgetter": ("import operator\ndef dice_coefficient(a, b):\n"
                                    "    return operator.attrgetter('dice_coefficient')(metrics)(a, b)",
                                    "helpers module metrics handed to other code"),
    "module alias": ("m = metrics\ndef dice_coefficient(a, b, smooth=1.0):\n    return m.dice_coefficient(a, b, smooth)",
                     "calls the reference implementation helpers.metrics.dice_coefficient (through m."),
    "function alias": ("f = metrics.dice_coefficient\ndef dice_coefficient(a, b, smooth=1.0):\n    return f(a, b, smooth)",
                       "calls the reference implementation helpers.metrics.dice_coefficient (through f)"),
    "alias bound later, through global": ("def dice_coefficient(a, b):\n    global f\n    return f(a, b)\n"
                                          "f = metrics.dice_coefficient", "calls the reference implementation"),
    "import inside the function": ("def dice_coefficient(a, b):\n    from helpers.metrics import dice_coefficient as r\n"
                                   "    return r(a, b)", "calls the reference implementation"),
    "helpers package path": ("import helpers.metrics\ndef dice_coefficient(a, b):\n"
                             "    return helpers.metrics.dice_coefficient(a, b)", "calls the reference implementation"),
    "through another helpers module": ("def dice_coefficient(a, b):\n    return training.metrics.dice_coefficient(a, b)",
                                       "calls the reference implementation"),
    "own helper function": ("def helper(a, b):\n    return metrics.dice_coefficient(a, b)\n\n"
                            "def dice_coefficient(a, b):\n    return helper(a, b)", "function dice_coefficient uses helper"),
    "container": ("refs = []\nrefs.append(metrics.dice_coefficient)\ndef dice_coefficient(a, b):\n"
                  "    return refs[0](a, b)", "function dice_coefficient uses refs"),
    "attribute of an object": ("box.f = metrics.dice_coefficient\ndef dice_coefficient(a, b):\n    return box.f(a, b)",
                               "function dice_coefficient uses"),
    "Keras registry": ("def dice_coefficient(a, b):\n    name = f'{metrics.KERAS_PACKAGE}>dice_coefficient'\n"
                       "    return keras.saving.get_registered_object(name)(a, b)", "by the name of the reference"),
    "custom_objects by name": ("def dice_coefficient(a, b):\n    return training.custom_objects()['dice_coefficient'](a, b)",
                               "by the name of the reference"),
    # a class of the graded name, or whose method of the graded name, delegates
    "method delegating": ("class M:\n    def dice_coefficient(self, a, b):\n        return metrics.dice_coefficient(a, b)\n"
                          "\ndice_coefficient = M().dice_coefficient", "calls the reference implementation"),
    "static method": ("class M:\n    dice_coefficient = staticmethod(metrics.dice_coefficient)",
                      "binds dice_coefficient to the course's reference"),
    "class of the graded name": ("class dice_coefficient:\n    def __new__(cls, a, b):\n"
                                 "        return metrics.dice_coefficient(a, b)", "write the class yourself"),
}

LEGITIMATE = [
    "import numpy as np\nfrom scipy import ndimage\nmask = ndimage.binary_fill_holes(np.ones((4, 4)))",
    "def dice_coefficient(y_true, y_pred, smooth=1.0):\n    axes = tuple(range(1, len(y_true.shape)))\n"
    "    i = keras.ops.sum(y_true * y_pred, axis=axes)\n    return keras.ops.mean((2 * i + smooth) / "
    "(keras.ops.sum(y_true, axis=axes) + keras.ops.sum(y_pred, axis=axes) + smooth))",
    "def hard_dice(y_true, y_pred, threshold=0.5, smooth=1.0):\n    return metrics.dice_coefficient("
    "ops.cast(y_true > 0.5, 'float32'), ops.cast(y_pred > threshold, 'float32'), smooth)",
    "model = models.build_unet((64, 64, 1), depth=3, base_filters=8)\nmodel.summary()",
    "train = generator.SegmentationDataset(pairs[:8], batch_size=4)\nx, y = train[0]",
    "class CXRDataset(keras.utils.PyDataset):\n    def __init__(self, pairs, **kwargs):\n"
    "        super().__init__(**kwargs)\n        self.pairs = list(pairs)\n"
    "    def __len__(self):\n        return len(self.pairs)",
    "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])",
    "import os\nfolder = os.path.join('runs', 'lesson')\nos.makedirs(folder, exist_ok=True)",
    "from pathlib import Path\ntable = Path('scores.csv')\ntable.write_text('a,b\\n')\nprint(table.read_text())",
    "callbacks = [keras.callbacks.ModelCheckpoint(str(run_dir / 'best.keras'), save_best_only=True)]",
    "import nibabel as nib\nnib.save(nib.Nifti1Image(volume, affine), str(path))",
    "history = model.fit(train, validation_data=val, epochs=config.scaled_epochs(3), verbose=2)",
    "scores = {name: float(metric(y, p)) for name, metric in [('dice', metrics.dice_coefficient)]}",
    "print(type(layer).__name__, model.loss.__name__)",
    "def threshold(probabilities, level=0.5):\n    return (probabilities > level).astype(np.uint8)",
    "x = data.read_mask(pairs[0][1])\nresult = checks",
    "import sys\nprint(sys.version)",
    "with np.printoptions(precision=3):\n    print(np.asarray(values))",
    "answer_text = 'the answers are in the lesson'",
    # IPython a learner may use: allowed magics, help on other code, text that only looks like magic
    "%time history = model.fit(train, validation_data=val, epochs=2, verbose=0)",
    "%%time\nhistory = model.fit(train, validation_data=val, epochs=2, verbose=0)\nprint(history.history)",
    "%%timeit -n 3 -r 1\nmodel.predict(x, verbose=0)",
    "%timeit -n 10 threshold(probs)",
    "\n%matplotlib inline\nplt.imshow(image)",
    "if SHOW:\n    %matplotlib inline\n    plt.show()",
    "%load_ext autoreload\n%autoreload 2",
    "%config InlineBackend.figure_format = 'retina'",
    "np.percentile?",
    "keras.layers.Conv2D??",
    "text = '''\n!rm -rf /\n%%bash\n'''\nprint('100%', text)",
    # helpers used as the lessons say, for other things than the exercise being written
    "import helpers.metrics as m\ndef hard_dice(y_true, y_pred, threshold=0.5, smooth=1.0):\n"
    "    return m.dice_coefficient(ops.cast(y_true > 0.5, 'float32'), ops.cast(y_pred > threshold, 'float32'), smooth)",
    "def build_unet(input_shape, depth=4, base_filters=16):\n    inputs = keras.Input(input_shape)\n"
    "    x = models.conv_block(inputs, base_filters)\n    return keras.Model(inputs, layers_for(x).Conv(1, 1)(x))",
    "model.compile(optimizer='adam', loss=losses.bce_dice_loss, metrics=[metrics.dice_coefficient, metrics.iou])",
    "reference_dice = metrics.dice_coefficient\nprint(float(reference_dice(y, p)), float(dice_coefficient(y, p)))",
    "for name in ['dice_coefficient', 'iou']:\n    fn = getattr(metrics, name)\n    print(name, float(fn(y, p)))",
    "rows = inference.per_case_metrics(TEST, masks)\niou = np.array([row['iou'] for row in rows])",
    "def dice_coefficient(y_true, y_pred, smooth=1.0):\n    kept = ops.sum(y_true * y_pred, axis=(1, 2, 3))\n"
    "    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))\n"
    "    return ops.mean((2.0 * kept + smooth) / (total + smooth))",
    "def iou(y_true, y_pred, smooth=1.0):\n    'Soft IoU, as in the lesson.'\n    i = ops.sum(y_true * y_pred)\n"
    "    return (i + smooth) / (ops.sum(y_true) + ops.sum(y_pred) - i + smooth)",
    "checks.check_dice(dice_coefficient)\ncourse.done('03')",
    "kept = slices.select_slices(mask, 0.2, np.random.default_rng(0))\nprint(len(kept))",
]


@pytest.mark.parametrize("name", list(CHEATS))
def test_audit_flags_tampering(name):
    source, expected = CHEATS[name]
    reasons = [reason for _, reason in grading_audit.audit_source(source, ALIASES)]
    assert reasons, f"{name!r} was not flagged"
    assert any(expected in reason for reason in reasons), f"{name!r}: {reasons}"


@pytest.mark.parametrize("name", list(IPYTHON_CHEATS))
def test_audit_reads_ipython_syntax(name):
    """A line of IPython syntax does not hide its cell: magics, shell escapes and help on the
    course's code are findings, and the code that allowed magics run is audited as code."""
    source, expected = IPYTHON_CHEATS[name]
    reasons = [reason for _, reason in grading_audit.audit_source(source, ALIASES)]
    assert any(expected in reason for reason in reasons), f"{name!r}: {reasons}"


def test_generated_ipython_calls_are_not_ipython_internals():
    """``get_ipython()`` written by IPython's transformation is not the learner's; written by
    hand outside the form of a magic it is."""
    for source in ("%time x = 1", "%%time\nx = 1", "%matplotlib inline", "%%bash\nls", "!ls", "x?"):
        reasons = [reason for _, reason in grading_audit.audit_source(source, ALIASES)]
        assert not any("internals" in reason for reason in reasons), (source, reasons)
    for source in ("get_ipython().events.register('pre_run_cell', print)", "ip = get_ipython()",
                   "%time get_ipython().input_transformers_cleanup.clear()"):
        reasons = [reason for _, reason in grading_audit.audit_source(source, ALIASES)]
        assert any("IPython internals" in reason for reason in reasons), (source, reasons)


def test_findings_point_at_the_learners_line_through_ipython_syntax():
    """IPython drops leading blank lines, joins a magic continued with a backslash and turns a
    cell magic into one call: each finding still names the line the learner wrote."""
    source = ("\n"                       # 1: dropped by IPython
              "x = 1\n"                  # 2
              "%time \\\n"               # 3: continued ...
              "    exec('a = 1')\n"      # 4: ... here (IPython joins 3 and 4 into one line)
              "if x:\n"                  # 5
              "    y = !ls\n"            # 6
              "%matplotlib inline\n"     # 7
              "eval('b')\n")             # 8
    found = [(line, reason.split(" (")[0]) for line, reason in grading_audit.audit_source(source, ALIASES)]
    assert found == [(3, "runs code from a string"), (6, "runs a shell command"), (8, "runs code from a string")]
    cell_magic = "%%time\nx = 1\n\nexec('a = 1')\n%time eval('1')\n"
    assert [line for line, _ in grading_audit.audit_source(cell_magic, ALIASES)] == [4, 5]
    assert [line for line, _ in grading_audit.audit_source("x = 1\ny = (\n", ALIASES)] == [2]
    release = _release()
    submission = copy.deepcopy(release)
    submission.cells.insert(2, nbformat.v4.new_code_cell("\n\nx = !ls\n%time y = 1"))
    assert [(f.cell, f.line) for f in grading_audit.audit(submission, release)] == [(2, 3)]


def test_a_cell_that_does_not_parse_is_reviewed_unless_it_is_the_releases():
    release = _release()
    release.cells.insert(1, nbformat.v4.new_code_cell("print('an example that does not run'"))
    submission = copy.deepcopy(release)
    assert grading_audit.audit(submission, release) == []
    submission.cells[1].source += ")\nx = ("
    findings = grading_audit.audit(submission, release)
    assert [(f.cell, f.line) for f in findings] == [(1, 2)]
    assert "does not parse" in findings[0].reason and "by hand" in findings[0].reason


@pytest.mark.parametrize("name", list(REFERENCE_CHEATS))
def test_audit_flags_the_reference_reached_without_calling_it_by_name(name):
    source, expected = REFERENCE_CHEATS[name]
    reasons = [reason for _, reason in grading_audit.audit_source(source, ALIASES, graded=GRADED)]
    assert any(expected in reason and "yourself" in reason for reason in reasons), f"{name!r}: {reasons}"


def test_a_comprehension_binding_a_graded_name_is_read_not_an_error():
    """A comprehension (ast.comprehension has no line) whose target is a graded name: the finding
    names its target's line; the audit used to raise AttributeError here."""
    source = "x = 1\nvalues = [f(1)\n          for dice_coefficient in [metrics.dice_coefficient]]"
    findings = grading_audit.audit_source(source, ALIASES, graded=GRADED)
    assert [line for line, _ in findings] == [3], findings


def test_code_nested_too_deep_is_a_finding_not_an_error():
    import sys

    source = "x = 1\ndef dice_coefficient(a, b):\n    return " + " + ".join(["a"] * 2 * sys.getrecursionlimit())
    findings = grading_audit.audit_source(source, ALIASES)
    assert len(findings) == 1 and findings[0][1].endswith("reviewed by hand"), findings


def test_reference_names_are_read_from_the_helpers_package():
    index = grading_audit._helpers_index()
    assert {"dice_coefficient", "select_slices", "build_unet", "SegmentationDataset"} <= index.references
    assert not any(name.startswith("check_") for name in index.references)  # the checks are not references
    assert "dice_coefficient" in index.exports["helpers.metrics"]
    # a graded name with no reference of that name in helpers is not concerned
    assert grading_audit.audit_source("my_dice = metrics.dice_coefficient", ALIASES, graded={"my_dice"}) == []


def _lesson(lesson):
    answers = nbformat.read(REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
    release = nbformat.read(REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    return answers, release


def _cell(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if (c.metadata.get("nbgrader") or {}).get("grade_id") == grade_id)


def test_reference_reached_across_cells_names_the_cell_and_line():
    """An alias bound in one cell and used in the solution cell of another; the graded names
    are the release's solution cells' names, so any cell binding one to the reference is flagged."""
    submission, release = _lesson("03_loss_and_metrics")
    solution = _cell(submission, "dice_coefficient")
    submission.cells[solution].source = ('def dice_coefficient(y_true, y_pred, smooth=1.0):\n'
                                         '    "Soft Dice."\n'
                                         '    return ref(y_true, y_pred, smooth=smooth)\n')
    submission.cells.insert(solution, nbformat.v4.new_code_cell("m = metrics\n\nref = m.dice_coefficient"))
    submission.cells.insert(2, nbformat.v4.new_code_cell("x = 1\nfrom helpers.losses import dice_loss"))
    findings = grading_audit.audit(submission, release)
    assert [(f.cell, f.line) for f in findings] == [(2, 2), (solution + 2, 3)], findings
    assert "binds dice_loss to the course's reference helpers.losses.dice_loss" in findings[0].reason
    assert "calls the reference implementation helpers.metrics.dice_coefficient (through ref)" in findings[1].reason


def test_helpers_used_for_other_exercises_are_not_flagged():
    """Lesson 05 may import the reference of lesson 03's exercise (in a solution cell too); a
    solution may use ``import helpers.metrics as m`` for another exercise; lesson 07's release
    keeps the reference's result in ``kept``, and a solution's own local ``kept`` is its own."""
    submission, release = _lesson("05_prediction")
    solution = _cell(submission, "metrics_table")
    submission.cells[solution].source = "from helpers.metrics import dice_coefficient\n" + submission.cells[solution].source
    submission.cells.insert(6, nbformat.v4.new_code_cell(
        "from helpers.metrics import dice_coefficient\nimport helpers.metrics as m\n"
        "print(float(dice_coefficient(true_masks[0][None, ..., None] * 1.0, true_masks[0][None, ..., None] * 1.0)))"))
    assert grading_audit.audit(submission, release) == []
    submission, release = _lesson("03_loss_and_metrics")
    solution = _cell(submission, "hard_dice")
    submission.cells[solution].source = ('import helpers.metrics as m\n\n'
                                         'def hard_dice(y_true, y_pred, threshold=0.5, smooth=1.0):\n'
                                         '    y_true = ops.cast(y_true > 0.5, "float32")\n'
                                         '    y_pred = ops.cast(y_pred > threshold, "float32")\n'
                                         '    return m.dice_coefficient(y_true, y_pred, smooth=smooth)\n')
    assert grading_audit.audit(submission, release) == []
    submission, release = _lesson("07_liver_ct")
    solution = _cell(submission, "select_slices")
    submission.cells[solution].source = submission.cells[solution].source.replace("chosen", "kept")
    assert "kept" in submission.cells[solution].source
    assert grading_audit.audit(submission, release) == []
    submission.cells[solution].source += "\nselect_slices = slices.select_slices\n"
    findings = grading_audit.audit(submission, release)
    assert [f.cell for f in findings] == [solution] and "binds select_slices" in findings[0].reason


@pytest.mark.parametrize("source", LEGITIMATE)
def test_audit_leaves_ordinary_code_alone(source):
    assert grading_audit.audit_source(source, ALIASES) == []


@pytest.mark.parametrize("lesson", ANSWER_LESSONS + ["00_example"])
def test_answer_notebooks_are_never_flagged(lesson):
    """The answers, audited as a submission against their release (cells given by the
    release, such as the hosted set-up cell, are the course's code, not the student's)."""
    if lesson == "00_example":
        nb, release = nbformat.read(FIXTURES / lesson / f"{lesson}.ipynb", as_version=4), {"cells": []}
    else:
        nb = nbformat.read(REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
        release = nbformat.read(REPO_ROOT / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    assert grading_audit.audit(nb, release) == []


@pytest.mark.parametrize("lesson", ANSWER_LESSONS)
def test_solution_cells_of_the_answers_are_never_flagged(lesson):
    """Every solution cell of the answers, audited on its own (no release to lean on); in
    the capstone, which has no graded cells, every code cell (teams change any of them)."""
    nb = nbformat.read(REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
    solutions = {"cells": [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("solution")]}
    if not any((c.metadata.get("nbgrader") or {}).get("grade") for c in nb.cells):
        solutions = {"cells": [c for c in nb.cells if c.cell_type == "code"
                               and not c.source.startswith("# Hosted notebooks only")]}
    assert solutions["cells"], f"{lesson} has no solution cells"
    assert grading_audit.audit(solutions, {"cells": []}) == []


def test_audit_skips_the_release_cells_and_names_cell_and_line():
    release = nbformat.read(FIXTURES / "00_example" / "00_example.ipynb", as_version=4)
    submission = copy.deepcopy(release)
    submission.cells.insert(3, nbformat.v4.new_code_cell("x = 1\nimport os\nos._exit(0)"))
    findings = grading_audit.audit(submission, release)
    assert [(f.cell, f.line) for f in findings] == [(3, 3)]
    assert str(findings[0]).startswith("cell 4, line 3:")


def _release():
    return nbformat.read(FIXTURES / "00_example" / "00_example.ipynb", as_version=4)


def _ids(nb):
    return [(c.get("metadata", {}).get("nbgrader") or {}).get("grade_id") for c in nb["cells"]]


def test_repair_leaves_an_intact_notebook_alone():
    release = _release()
    repaired, notes = grading_audit.repair(release, release)
    assert notes == [] and _ids(repaired) == _ids(release)


def test_repair_restores_renamed_ids_flags_points_and_cell_types():
    release = _release()
    submission = copy.deepcopy(release)
    ids = _ids(release)
    submission.cells[ids.index("square")].metadata.nbgrader.grade_id = "renamed"
    submission.cells[ids.index("mean_check")].metadata.nbgrader.grade = False
    submission.cells[ids.index("mean_check")].metadata.nbgrader.points = 50
    check = submission.cells[ids.index("count_vowels_check")]
    check.cell_type = "markdown"
    submission.cells.insert(1, nbformat.v4.new_code_cell("print('bonus')", metadata={"nbgrader": {
        "grade": True, "grade_id": "bonus", "points": 9, "solution": False, "locked": False}}))
    repaired, notes = grading_audit.repair(submission, release)
    assert [i for i in _ids(repaired) if i] == [i for i in ids if i]
    meta = {c.metadata.nbgrader.grade_id: c for c in repaired.cells if c.metadata.get("nbgrader")}
    assert meta["mean_check"].metadata.nbgrader.grade is True
    assert meta["mean_check"].metadata.nbgrader.points == 2
    assert meta["count_vowels_check"].cell_type == "code"
    text = " ".join(notes)
    for expected in ("renamed", "bonus", "grade", "cell type"):
        assert expected in text, f"{expected!r} missing from {notes}"


def test_repair_recognises_a_locked_cell_by_content():
    release = _release()
    submission = copy.deepcopy(release)
    ids = _ids(release)
    del submission.cells[ids.index("setup")].metadata["nbgrader"]
    repaired, notes = grading_audit.repair(submission, release)
    assert _ids(repaired) == ids
    assert any("recognised by its content" in note for note in notes)


def test_repair_restores_a_written_answer_by_position():
    """A manually graded markdown answer whose grade_id a student changed (or turned into a
    code cell) gets its release metadata and cell type back."""
    release = _release()
    written = next(c for c in release.cells if c.cell_type == "markdown"
                   and c.metadata.get("nbgrader", {}).get("solution"))
    assert written.metadata.nbgrader.grade is True, "the example lesson has a written answer"
    ids = _ids(release)
    submission = copy.deepcopy(release)
    answer = submission.cells[ids.index(written.metadata.nbgrader.grade_id)]
    answer.metadata.nbgrader.grade_id = "my_answer"
    answer.metadata.nbgrader.points = 10
    answer.source = "Because len([]) is 0."
    repaired, notes = grading_audit.repair(submission, release)
    assert _ids(repaired) == ids, notes
    fixed = repaired.cells[ids.index(written.metadata.nbgrader.grade_id)]
    assert fixed.cell_type == "markdown" and fixed.metadata.nbgrader.points == written.metadata.nbgrader.points
    assert fixed.source == "Because len([]) is 0.", "the student's answer is kept"
    assert any("recognised by its position" in note for note in notes), notes


def test_manual_points_are_apart_from_automatic_ones():
    """submission_scores: the written answer's points are neither won nor lost automatically."""
    from types import SimpleNamespace

    from helpers.grading import commands as grading

    release = json.loads(nbformat.writes(_release()))
    grade = SimpleNamespace
    grades = [grade(name="square_check", score=1.0, max_score=1.0, needs_manual_grade=False),
              grade(name="mean_check", score=0.0, max_score=2.0, needs_manual_grade=False),
              grade(name="count_vowels_check", score=2.0, max_score=2.0, needs_manual_grade=False),
              grade(name="mean_written", score=0.0, max_score=1.0, needs_manual_grade=True)]
    assert grading._max_score(release) == 5.0
    assert sum(grading._graded_points(release, manual=True).values()) == 1.0
    assert grading.submission_scores(grades, release) == (3.0, 1.0)
    grades[-1] = grade(name="mean_written", score=0.0, max_score=1.0, needs_manual_grade=False)
    assert grading.submission_scores(grades, release) == (3.0, 0.0), "an answer left blank: nothing to grade"


def test_report_states_manual_points_apart(tmp_path):
    from helpers.grading import commands as grading

    grading.write_report([grading.GradingResult("alice", "01_x", 3, 5, "graded", manual_max=2,
                                                needs_manual_grading=2),
                          grading.GradingResult("bob", "01_x", 5, 5, "graded", manual_max=2)], tmp_path)
    import csv

    with open(tmp_path / "grading_report.csv", newline="") as handle:
        rows = {r["student"]: r for r in csv.DictReader(handle)}
    assert (rows["alice"]["auto_score"], rows["alice"]["auto_max"]) == ("3", "5")
    assert (rows["alice"]["manual_max"], rows["alice"]["needs_manual_grading"]) == ("2", "2")
    assert rows["bob"]["needs_manual_grading"] == "0"
    page = (tmp_path / "grading_report.html").read_text()
    assert "1 submission(s) have written answers that need manual grading (2 points)" in page


def test_module_reads_nothing_at_import():
    source = Path(grading_audit.__file__).read_text()
    assert "open(" not in source.split("def ", 1)[0]


def test_report_keeps_rows_of_earlier_runs(tmp_path):
    from helpers.grading import commands as grading

    first = grading.GradingResult("alice", "01_x", 3, 5, "graded")
    grading.write_report([first, grading.GradingResult("bob", "01_x", 0, 5, "failed", ["not a notebook"])], tmp_path)
    grading.write_report([grading.GradingResult("bob", "01_x", 5, 5, "graded"),
                          grading.GradingResult("alice", "02_y", 1, 2, "flagged", ["needs review: x"])], tmp_path)
    import csv

    with open(tmp_path / "grading_report.csv", newline="") as handle:
        rows = {(r["student"], r["lesson"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {("alice", "01_x"), ("bob", "01_x"), ("alice", "02_y")}
    assert rows[("bob", "01_x")]["status"] == "graded" and rows[("alice", "01_x")]["auto_score"] == "3"
    assert "needs review" in (tmp_path / "grading_report.html").read_text()


def _solution(grade_id: str, source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "solution": True, "grade": False, "locked": False}
    return cell


def test_every_run_reading_is_an_exercise_of_the_answers_that_sets_its_name():
    """``RUN_READINGS`` names, for each exercise whose check reads the lesson's own run, the
    name its solution cell sets; a stale entry (renamed exercise or name) fails here, and
    every such exercise tells the learner to compute the value, not to type it."""
    found = {}
    for lesson in ANSWER_LESSONS:
        nb = nbformat.read(REPO_ROOT / "answers" / lesson / f"{lesson}.ipynb", as_version=4)
        for index, cell in enumerate(nb.cells):
            grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id")
            if grade_id in grading_audit.RUN_READINGS and cell.cell_type == "code":
                name = grading_audit.RUN_READINGS[grade_id]
                assert f"{name} = " in cell.source, (lesson, grade_id, name)
                text = "\n".join(c.source for c in nb.cells[max(0, index - 3):index] if c.cell_type == "markdown")
                assert "grading re-runs your notebook at a" in text.replace("\n", " ").lower(), (lesson, grade_id)
                found[grade_id] = lesson
    assert set(found) == set(grading_audit.RUN_READINGS), set(grading_audit.RUN_READINGS) - set(found)


@pytest.mark.parametrize("source, flagged", [
    ("BEST_EPOCH = 15", True),
    ('LOSS_CHOICE = "weighted"  # read off the table', True),
    ("USE_POSTPROCESSING = False", True),
    ("EMPTY_FRACTION = 0.5\nprint(EMPTY_FRACTION)", True),
    ("BEST_EPOCH = int(np.argmax(history.history['val_dice'])) + 1", False),
    ('LOSS_CHOICE = max(validation_evidence, key=validation_evidence.get)', False),
    ("USE_POSTPROCESSING = ...", False),                        # the blank itself
    ("def pick():\n    return 15\nBEST_EPOCH = pick()", False),
])
def test_a_run_reading_typed_as_a_value_is_reviewed_not_scored_differently(source, flagged):
    """A learner who types what their own run showed may be right, yet the check at the
    grading scale reads another run: the audit marks it for review (the score is untouched);
    a value computed from the run is not a finding."""
    grade_id = {"BEST": "best_epoch", "LOSS": "loss_choice", "USE_": "postprocessing_choice",
                "EMPT": "empty_fraction_choice", "def ": "best_epoch"}[source[:4]]
    findings = grading_audit.audit({"cells": [_solution(grade_id, source)]}, {"cells": []})
    reasons = [f.reason for f in findings if "typed" in f.reason]
    assert bool(reasons) == flagged, findings
    if flagged:
        assert "grading re-runs the notebook at a smaller scale" in reasons[0] and findings[0].line == 1
    other = grading_audit.audit({"cells": [_solution("square", "BEST_EPOCH = 15")]}, {"cells": []})
    assert not [f for f in other if "typed" in f.reason]         # only the exercises that read a run
