"""Hidden tests add cases, never requirements (COURSE.md, "Fair checks"), proved for every
exercise of every lesson at once, without executing a notebook.

Every statement of every hidden block (between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS`` in the answer notebooks) is read as code and sorted:

* **adds cases**: a re-call of a ``checks.check_*`` function that the visible part of the
  same cell calls too, on the same learner objects, with arguments that differ (once the
  check's defaults are filled in) only in the case-count and seed arguments of
  :data:`CASE_ARGUMENTS`;
* **anything else** (an extra ``assert``, a re-call with other sizes or numbers of classes,
  another check, notebook state) may add a requirement, so it needs a *witness*: the label
  of a wrong solution in ``tests/checks/test_wrong_solutions.py`` (its ``WRONG``
  catalogue) that breaks exactly that requirement. The catalogue proves that the visible
  check catches the witness; here the witness is also run, in a small stand-in namespace,
  through the visible part of the cell (it must raise the check's ``AssertionError``) and
  through the hidden statement (it must fail there too, as nbgrader counts a failure: any
  exception, where the course's reference passes the same statement in the same namespace,
  so that the witness fails the hidden requirement, not a missing name of the stand-in).

A hidden statement without a witness, a witness for a statement that no longer exists, a
witness missing from the catalogue, or one that either check lets through fails the test:
the hidden test then asks for something the exercise text and visible check do not (state
it there, make the visible check enforce it, add the wrong solution), or the table is stale.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helpers import checks, config, data, metrics

import test_wrong_solutions as catalogue  # the catalogue, imported under the name pytest gives it

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"

#: Arguments a hidden re-call may change without changing what is asked: they only draw
#: more or other cases of the same requirements (any other changed argument is a requirement).
CASE_ARGUMENTS = {
    "random_cases": "the number of random cases after the fixed ones",
    "cases": "the number of random cases after the fixed ones",
    "seed": "the seed of the random cases",
    "n": "check_flip_augmentation: the number of pairs whose flip share is counted",
    "steps": "check_train_step: the number of training steps compared with Keras's own",
    "epochs": "check_dataset: the number of epochs whose orders are compared",
    "data": "check_choose_threshold: one more validation set (the lesson's), besides the fixed ones",
}


# --------------------------------------------------------------------------- reading the blocks

@dataclass(frozen=True)
class Statement:
    """A hidden statement (with the assignments and imports before it that it uses)."""

    grade_id: str
    code: str                   # ast.unparse of the statements, one per line
    adds_cases: bool
    why: str                    # for a requirement: why it is not a mere re-call
    visible: str = ""           # the visible part of its cell

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1(self.code.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Cell:
    grade_id: str
    visible: str
    hidden: str


def check_cells(notebook: Path) -> list[Cell]:
    """The check cells of ``notebook`` that hold a hidden block."""
    cells = []
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] != "code" or BEGIN not in source:
            continue
        before, rest = source.split(BEGIN, 1)
        hidden, after = rest.split(END, 1)
        grade_id = cell["metadata"]["nbgrader"]["grade_id"]
        cells.append(Cell(grade_id, before + after, hidden))
    return cells


def _check_name(node: ast.AST) -> str | None:
    """``"check_x"`` for a call ``checks.check_x(...)``, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "checks" \
            and node.func.attr.startswith("check_"):
        return node.func.attr
    return None


def _bound(call: ast.Call) -> dict[str, str] | None:
    """The check's arguments as source text, its defaults filled in; None where they cannot
    be bound (a starred argument, a check that does not exist)."""
    function = getattr(checks, call.func.attr, None)             # type: ignore[attr-defined]
    if function is None or any(isinstance(a, ast.Starred) for a in call.args) \
            or any(k.arg is None for k in call.keywords):
        return None
    try:
        bound = inspect.signature(function).bind(*[ast.unparse(a) for a in call.args],
                                                 **{k.arg: ast.unparse(k.value) for k in call.keywords})
    except TypeError:
        return None
    arguments = {name: repr(parameter.default) for name, parameter in inspect.signature(function).parameters.items()
                 if parameter.default is not inspect.Parameter.empty}
    arguments.update(bound.arguments)
    return arguments


def _recall_verdict(node: ast.stmt, visible_calls: list[ast.Call]) -> str:
    """'' when ``node`` is a re-call that only adds cases; else why it is not."""
    if not (isinstance(node, ast.Expr) and _check_name(node.value)):
        return "not a re-call of a check"
    call = node.value
    assert isinstance(call, ast.Call)
    same = [v for v in visible_calls if _check_name(v) == _check_name(call)]
    if not same:
        return f"the visible part does not call checks.{_check_name(call)}"
    hidden_arguments = _bound(call)
    if hidden_arguments is None:
        return "its arguments cannot be compared"
    reasons = []
    for visible in same:
        visible_arguments = _bound(visible)
        if visible_arguments is None:
            continue
        changed = sorted(name for name in set(hidden_arguments) | set(visible_arguments)
                         if hidden_arguments.get(name) != visible_arguments.get(name) and name not in CASE_ARGUMENTS)
        if not changed:
            return ""
        reasons.append(", ".join(changed))
    return f"it changes {' / '.join(reasons) or 'its arguments'} (not a case or seed argument)"


def hidden_statements(cell: Cell) -> list[Statement]:
    """The statements of the hidden block, each with the imports and assignments before it."""
    visible_calls = [node for node in ast.walk(ast.parse(cell.visible)) if _check_name(node)]
    statements, pending = [], []
    body = ast.parse(cell.hidden).body
    for i, node in enumerate(body):
        pending.append(node)
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)) and i < len(body) - 1:
            continue            # set-up: it belongs to the statement that uses it
        why = _recall_verdict(node, visible_calls) if len(pending) == 1 else "it needs set-up statements"
        statements.append(Statement(cell.grade_id, "\n".join(ast.unparse(n) for n in pending), not why, why,
                                    cell.visible))
        pending = []
    return statements


def all_statements(notebooks: list[Path] | None = None) -> tuple[list[Cell], list[Statement]]:
    notebooks = notebooks if notebooks is not None else sorted((ROOT / "answers").glob("*/*.ipynb"))
    cells = [cell for notebook in notebooks for cell in check_cells(notebook)]
    return cells, [statement for cell in cells for statement in hidden_statements(cell)]


# --------------------------------------------------------------------------- the witnesses

@dataclass(frozen=True)
class Witness:
    label: str                  # a wrong solution of the catalogue, under the statement's grade_id
    requirement: str            # what the hidden statement asks, in words
    binds: tuple[str, ...] = ()  # the names its learner objects replace (default: all of STAND_INS's)
    not_run: str = ""           # why the witness cannot be run in a stand-in namespace ('' = it is run)


#: (grade_id, fingerprint of the hidden statement) -> the wrong solution that breaks exactly
#: what it asks. A new or changed statement prints its fingerprint and code when it fails.
WITNESSES: dict[tuple[str, str], Witness] = {
    # assert np.allclose(percentile_stretch(ramp, low=0, high=100), ramp / 255, atol=1e-5)
    ("percentile_stretch_check", "13e09533d8"): Witness("fixed", "low and high are honoured (0 and 100: min-max)"),
    # checks.check_dataset(CXRDataset, n_pairs=10, batch_size=4, image_size=(24, 24), seed=3, epochs=4)
    ("cxr_dataset_check", "610823167f"): Witness("the lesson's size, not image_size",
                                                 "image_size and batch_size are honoured, whatever they are"),
    # checks.check_dataset(CXRDataset, n_pairs=5, batch_size=5, image_size=(40, 40), seed=11)
    ("cxr_dataset_check", "e42cd00fd9"): Witness("exact multiple gets an extra batch",
                                                 "no extra batch when batch_size divides the pairs"),
    # assert len(CXRDataset(pairs, batch_size=8)) == math.ceil(len(pairs) / 8)
    ("cxr_dataset_check", "bf98f666d7"): Witness("drops last", "the last, smaller batch counts"),
    # checks.check_dataset_augments(CXRDataset, n_pairs=6, batch_size=4, image_size=(40, 40), seed=5)
    ("augment_pair_check", "bdab9c3a50"): Witness("data set ignores augment=True",
                                                  "augment=True augments, at other sizes too",
                                                  binds=("CXRDataset",)),
    # assert abs(float(dice_coefficient(as_batch(TRUE), as_batch(PRED))) - 25 / 37) < 0.0001
    ("dice_coefficient_check", "1c8103f7ed"): Witness("no smooth", "the worked example's value, smoothing included"),
    # _parts = split_by_patient(PAIRS, ...); assert sum(len(p) for p in _parts) == len(PAIRS)
    ("split_by_patient_check", "80ddcfcc06"): Witness("floor drops patients", "the three parts hold every pair"),
    # assert MONITOR.startswith('val_') and MODE in ('max', 'min')
    ("monitor_check", "f6852ad95e"): Witness("dice / max", "a validation quantity, and a direction"),
    # checks.check_callbacks(make_callbacks(RUN_DIR), RUN_DIR, monitor=MONITOR, mode=MODE)
    ("make_callbacks_check", "e64a47da1c"): Witness("ignores run_dir", "the files go into the run folder given"),
    # _tmp = pathlib.Path(tempfile.mkdtemp()) / 'nested' / 'run'; checks.check_callbacks(make_callbacks(_tmp), _tmp, ...)
    ("make_callbacks_check", "e7456c44ba"): Witness("mkdir without parents",
                                                    "a new run folder whose parent does not exist yet works"),
    # assert np.asarray(keep_largest_components(np.zeros((5, 5), np.uint8), 2)).sum() == 0
    ("keep_largest_components_check", "af3257a3fb"): Witness("an empty mask fills the image", "an empty mask stays empty"),
    # checks.check_fill_holes(lambda m: postprocess(m, n_components=100), cases=5)
    ("postprocess_check", "599e2cfb74"): Witness("no fill", "every hole of the kept components is filled"),
    # assert window_hu(np.array([-1000.0, 300.0])).tolist() == [0.0, 1.0]
    ("window_hu_check", "0243d15aac"): Witness("another lung window by default", "the lung window is the default"),
    # assert model.output_shape[1:] == PATCH_SIZE + (1,)
    ("unet3d_check", "d091fc3aa3"): Witness("built for another patch", "the model is built for PATCH_SIZE"),
    # with tempfile.TemporaryDirectory() as tmp: ... an all-zero prediction gives an empty mask
    ("save_prediction_check", "feeff2481c"): Witness("normalised by the maximum",
                                                     "an all-zero prediction gives an empty mask on the CT's grid"),
    # checks.check_volume_to_slices(volume_to_slices, size=48, seed=5) and size=16
    ("volume_to_slices_check", "90fd3a2732"): Witness("the lesson's SIZE, not size", "the size argument is honoured"),
    ("volume_to_slices_check", "b6fdfbe6a8"): Witness("the lesson's SIZE, not size", "the size argument is honoured"),
    # checks.check_kfold(kfold_by_patient, n_cases=11, k=4, seed=9)
    ("kfold_check", "c6094b6984"): Witness("k ignored", "k folds, whatever k is"),
    # checks.check_kfold(kfold_by_patient, n_cases=6, k=3, seed=1)
    ("kfold_check", "0c560698f4"): Witness("no shuffle", "the folds are shuffled, for 6 patients too"),
    # checks.check_one_hot(one_hot, n_classes=5, seed=3)
    ("one_hot_check", "8a6e82cf1a"): Witness("fixed 4, visible n_classes=3", "n_classes channels, whatever n_classes is"),
    # _truth, _pred, _ = test_results[0]; region_dice equals metrics.brats_region_dice on it
    ("region_dice_check", "e46adc3d26"): Witness("TC with edema", "the regions' Dice on a real case"),
    # checks.check_per_class_scores(per_class_scores, n_classes=5, seed=5)
    ("per_class_scores_check", "1b0a6eeb48"): Witness("fixed 4 classes, visible n_classes=3",
                                                      "n_classes rows, whatever n_classes is"),
}


# --------------------------------------------------------------------------- stand-in namespaces

def _cxr_pairs(folder: Path, patients: int, views: int = 1) -> list[tuple[Path, Path]]:
    names = [f"SYN_{p:04d}_{v}.png" for p in range(patients) for v in range(views)]
    return [(folder / "images" / name, folder / "masks" / name) for name in names]


def _toy_masks() -> dict:
    """The names lesson 03's hidden test uses (TRUE, PRED, as_batch), from the notebook's own cell."""
    notebook = ROOT / "answers" / "03_loss_and_metrics" / "03_loss_and_metrics.ipynb"
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "TRUE = " in source and "def as_batch" in source:
            namespace: dict = {"np": np}
            exec(compile(source, "toy_masks", "exec"), namespace)
            return {name: namespace[name] for name in ("TRUE", "PRED", "as_batch")}
    raise AssertionError("lesson 03: no cell defines TRUE, PRED and as_batch any more; update _toy_masks")


def _save_prediction_state(folder: Path) -> dict:
    from helpers.checks.lung_ct import _working_grid_case

    reference, _, _, probabilities, working_affine = _working_grid_case(folder)
    return {"val": [(probabilities, None, working_affine)], "val_pairs": [(reference, None)]}


def _brain_results() -> dict:
    rng = np.random.default_rng(3)
    truth = rng.choice(4, size=(12, 10, 6), p=[0.6, 0.15, 0.15, 0.1])
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 4, truth.shape))
    return {"test_results": [(truth, pred, None)]}


#: grade_id -> (the names the visible check is called on, the course's reference for them,
#: a stand-in for the notebook state the cell uses, given a temporary folder)
STAND_INS: dict[str, tuple[tuple[str, ...], Callable[[], tuple], Callable[[Path], dict]]] = {
    "percentile_stretch_check": (("percentile_stretch",), lambda: (_ref("generator", "percentile_stretch"),),
                                 lambda tmp: {}),
    "cxr_dataset_check": (("CXRDataset",), lambda: (_ref("generator", "CXRDataset"),),
                          lambda tmp: {"pairs": _cxr_pairs(tmp, 10)}),
    "augment_pair_check": (("augment_pair", "CXRDataset"), lambda: (_ref("generator", "augment_pair"),
                                                                    _ref("generator", "CXRDataset")),
                           lambda tmp: {}),
    "dice_coefficient_check": (("dice_coefficient",), lambda: (metrics.batch_mean(metrics.dice_coefficient),),
                               lambda tmp: _toy_masks()),
    "split_by_patient_check": (("split_by_patient",), lambda: (_ref("training", "split_by_patient"),),
                               lambda tmp: {"PAIRS": _cxr_pairs(tmp, 9, views=2)}),
    "monitor_check": (("MONITOR", "MODE"), lambda: ("val_dice", "max"), lambda tmp: {}),
    "make_callbacks_check": (("make_callbacks",),
                             lambda: (lambda run_dir: _ref("training", "standard_callbacks")(run_dir, monitor="val_dice",
                                                                                           mode="max"),),
                             lambda tmp: {"MONITOR": "val_dice", "MODE": "max", "RUN_DIR": tmp / "runs" / "04_training"}),
    "keep_largest_components_check": (("keep_largest_components",),
                                      lambda: (_ref("inference", "keep_largest_components"),), lambda tmp: {}),
    "postprocess_check": (("postprocess",), lambda: (_ref("inference", "postprocess"),), lambda tmp: {}),
    "window_hu_check": (("window_hu",), lambda: (_ref("generator", "window_hu"),), lambda tmp: {}),
    "unet3d_check": (("model",), lambda: (_ref("models", "reference_model")(catalogue.PATCH_06[:3]),),
                     lambda tmp: {"PATCH_SIZE": catalogue.PATCH_06[:3]}),
    "save_prediction_check": (("save_prediction",), lambda: (_ref("inference", "save_prediction"),),
                              _save_prediction_state),
    "volume_to_slices_check": (("volume_to_slices",), lambda: (_ref("slices", "volume_to_slices"),), lambda tmp: {}),
    "kfold_check": (("kfold_by_patient",), lambda: (_ref("slices", "kfold_by_patient"),), lambda tmp: {}),
    "one_hot_check": (("one_hot",), lambda: (_ref("generator", "one_hot"),), lambda tmp: {}),
    "region_dice_check": (("region_dice",), lambda: (metrics.brats_region_dice,), lambda tmp: _brain_results()),
    "per_class_scores_check": (("per_class_scores",), lambda: (metrics.reference_per_class_scores,), lambda tmp: {}),
}


def _ref(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"helpers.{module}"), name)


def _namespace(grade_id: str, tmp: Path, learners: tuple = (), binds: tuple[str, ...] = ()) -> dict:
    """The modules the hidden tests use, a stand-in for the notebook state, the course's
    references under the learner names, and ``learners`` (a witness's) under ``binds``."""
    names, references, state = STAND_INS[grade_id]
    tmp.mkdir(parents=True, exist_ok=True)
    namespace = {"np": np, "math": math, "checks": checks, "config": config, "data": data, "metrics": metrics,
                 "tempfile": tempfile, "pathlib": __import__("pathlib")}
    namespace.update(state(tmp))
    namespace.update(zip(names, references()))
    binds = binds or names
    assert len(learners) in (0, len(binds)), f"{grade_id}: {len(learners)} learner objects for the names {binds}"
    namespace.update(zip(binds, learners))
    return namespace


def _run(code: str, namespace: dict, where: str) -> None:
    exec(compile(code, where, "exec"), namespace)


def witness_problems(statement: Statement, witness: Witness, tmp: Path) -> list[str]:
    """What is wrong with ``witness`` for ``statement``; empty when it proves the statement fair."""
    key = (statement.grade_id, witness.label)
    if key not in {(exercise, label) for exercise, label, _, _ in catalogue.WRONG}:
        return [f"{key}: no such wrong solution in tests/checks/test_wrong_solutions.py"]
    if witness.not_run:
        return []
    if statement.grade_id not in STAND_INS or key not in catalogue.LEARNER:
        return [f"{key}: cannot be run (no stand-in namespace here or no LEARNER entry in the catalogue); "
                f"add them, or say why in Witness.not_run"]
    problems = []
    # the course's reference passes the hidden statement in this namespace: the stand-in is sound
    try:
        _run(statement.code, _namespace(statement.grade_id, tmp / "reference"), f"{statement.grade_id} hidden (reference)")
    except Exception as error:  # noqa: BLE001 - any failure means the stand-in is unsound
        return [f"{key}: the course's reference fails the hidden statement in the stand-in namespace "
                f"({type(error).__name__}: {error}); fix STAND_INS"]
    learners = catalogue.LEARNER[key]()
    try:
        _run(statement.visible, _namespace(statement.grade_id, tmp / "visible", learners, witness.binds),
             f"{statement.grade_id} visible")
        problems.append(f"{key}: the visible check lets the witness through: the hidden statement asks for "
                        f"something the visible check does not enforce")
    except AssertionError:
        pass
    except Exception as error:  # noqa: BLE001 - reported: a check names the mistake in its AssertionError
        problems.append(f"{key}: the visible check stops on {type(error).__name__}: {error}, not on its own "
                        f"AssertionError naming the mistake")
    try:
        _run(statement.code, _namespace(statement.grade_id, tmp / "hidden", learners, witness.binds),
             f"{statement.grade_id} hidden")
        problems.append(f"{key}: the witness passes the hidden statement, so it does not break what the "
                        f"statement asks; choose a wrong solution that does")
    except Exception:  # noqa: BLE001 - nbgrader fails a test cell on any exception; the reference passed
        pass
    return problems


def coverage_problems(statements: list[Statement], witnesses: dict[tuple[str, str], Witness]) -> list[str]:
    """Hidden requirements without a witness, and witnesses of statements that are gone."""
    needed = {(s.grade_id, s.fingerprint): s for s in statements if not s.adds_cases}
    problems = [f"{s.grade_id} hidden statement {s.fingerprint} ({s.why}) has no witness in WITNESSES:\n{s.code}"
                for key, s in needed.items() if key not in witnesses]
    problems += [f"witness {key} -> {w.label!r} names no hidden statement (changed or removed?)"
                 for key, w in witnesses.items() if key not in needed]
    return problems


# --------------------------------------------------------------------------- the tests

CELLS, STATEMENTS = all_statements()
REQUIREMENTS = [s for s in STATEMENTS if not s.adds_cases]


def test_the_blocks_are_read():
    """Every graded check cell has hidden tests, and most of them only add cases."""
    assert len(CELLS) >= 30 and len({c.grade_id for c in CELLS}) == len(CELLS)
    assert sum(s.adds_cases for s in STATEMENTS) > len(REQUIREMENTS)
    for statement in STATEMENTS:
        assert statement.code.strip(), statement


def test_every_hidden_requirement_has_a_witness_and_no_witness_is_stale():
    problems = coverage_problems(STATEMENTS, WITNESSES)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("statement", REQUIREMENTS, ids=[f"{s.grade_id}:{s.fingerprint}" for s in REQUIREMENTS])
def test_the_witness_breaks_the_hidden_requirement_and_the_visible_check_catches_it(statement, tmp_path, capsys):
    witness = WITNESSES.get((statement.grade_id, statement.fingerprint))
    if witness is None:
        pytest.fail("no witness (see test_every_hidden_requirement_has_a_witness_and_no_witness_is_stale)")
    assert not witness.not_run or len(witness.not_run) > 20, "say why the witness cannot be run"
    problems = witness_problems(statement, witness, tmp_path)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the mechanism bites

def test_a_re_call_adds_cases_only_with_case_or_seed_arguments():
    cell = Cell("dice_coefficient_check", "'Check.'\nchecks.check_dice(dice_coefficient)\n", "\n".join([
        "checks.check_dice(dice_coefficient, random_cases=50, seed=7)",     # adds cases
        "checks.check_dice(dice_coefficient, 10, 0)",                        # the defaults, positionally
        "checks.check_dice(hard_dice, random_cases=50)",                     # another learner object
        "checks.check_dice(dice_coefficient, name='dice')",                  # a requirement-changing argument
        "checks.check_iou(dice_coefficient)",                                # a check the visible part does not call
        "assert dice_coefficient is not None",                               # an extra assert
        "x = 1",                                                             # set-up at the end: on its own
    ]))
    verdicts = [(s.adds_cases, s.why) for s in hidden_statements(cell)]
    assert [adds for adds, _ in verdicts] == [True, True, False, False, False, False, False], verdicts
    assert "fn" in verdicts[2][1] and "name" in verdicts[3][1] and "check_iou" in verdicts[4][1], verdicts


def _with_extra_hidden_line(notebook: Path, grade_id: str, line: str, tmp_path: Path) -> Path:
    content = json.loads(notebook.read_text())
    for cell in content["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            source = "".join(cell["source"])
            cell["source"] = source.replace(END, f"{line}\n{END}")
            break
    else:
        raise AssertionError(f"no cell {grade_id} in {notebook}")
    copy = tmp_path / notebook.name
    copy.write_text(json.dumps(content))
    return copy


def test_a_hidden_assert_without_a_witness_fails(tmp_path):
    """The test bites: a copy of lesson 05 whose hidden block gains a requirement (the kept
    components come back as uint8) that no witness covers."""
    notebook = ROOT / "answers" / "05_prediction" / "05_prediction.ipynb"
    line = "assert keep_largest_components(np.ones((4, 4), np.uint8), 1).dtype == np.uint8"
    _, statements = all_statements([_with_extra_hidden_line(notebook, "keep_largest_components_check", line, tmp_path)])
    witnesses = {key: w for key, w in WITNESSES.items() if key[0] in {s.grade_id for s in statements}}
    problems = coverage_problems(statements, witnesses)
    assert len(problems) == 1 and "keep_largest_components_check" in problems[0] and line in problems[0], problems
    # a re-call with a new seed is no requirement: nothing to witness
    recall = "checks.check_keep_largest_components(keep_largest_components, cases=4, seed=99)"
    _, statements = all_statements([_with_extra_hidden_line(notebook, "keep_largest_components_check", recall,
                                                            tmp_path)])
    assert not coverage_problems(statements, witnesses)
    # ... and a witness whose statement is gone is stale
    problems = coverage_problems(statements, {**witnesses, ("keep_largest_components_check", "0" * 10): Witness(
        "off by one", "gone")})
    assert len(problems) == 1 and "names no hidden statement" in problems[0], problems


def _statement(grade_id: str, needle: str) -> Statement:
    return next(s for s in REQUIREMENTS if s.grade_id == grade_id and needle in s.code)


def test_a_witness_the_visible_check_lets_through_fails(tmp_path, monkeypatch, capsys):
    """The test bites: the lesson-like keep_largest_components, entered as a wrong solution,
    passes the visible check and the hidden assert; one outside the catalogue is refused."""
    statement = _statement("keep_largest_components_check", "an empty mask stays empty")
    monkeypatch.setattr(catalogue, "WRONG", catalogue.WRONG + [(statement.grade_id, "not wrong", None, ())])
    monkeypatch.setitem(catalogue.LEARNER, (statement.grade_id, "not wrong"), lambda: (catalogue._keep,))
    problems = witness_problems(statement, Witness("not wrong", "an empty mask stays empty"), tmp_path)
    assert any("visible check lets the witness through" in p for p in problems), problems
    assert any("passes the hidden statement" in p for p in problems), problems
    problems = witness_problems(statement, Witness("no such label", "an empty mask stays empty"), tmp_path)
    assert problems and "no such wrong solution" in problems[0], problems


def test_a_witness_that_passes_the_hidden_statement_fails(tmp_path, capsys):
    """The test bites: a liver window by default is caught by the visible check, but the
    hidden assert (which reads -1000 and 300 HU only) lets it through: it witnesses nothing."""
    statement = _statement("window_hu_check", "lung window")
    problems = witness_problems(statement, Witness("liver window by default", "the lung window"), tmp_path)
    assert len(problems) == 1 and "passes the hidden statement" in problems[0], problems
