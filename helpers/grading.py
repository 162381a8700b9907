"""Instructor commands around nbgrader: release, collect, autograde, feedback, export.

Every lesson is one nbgrader assignment (``answers/<lesson>/<lesson>.ipynb`` is its source,
``notebooks/<lesson>/<lesson>.ipynb`` its release); ``nbgrader_config.py`` at the course
root holds the settings. These functions only arrange files and call nbgrader's own
commands (``python -m nbgrader ...`` in the course root, so they read that config), and its
gradebook API for students; scores live in ``gradebook.db``.

    python -m helpers release [LESSON ...]            regenerate notebooks/ from answers/
    python -m helpers collect [--from submissions]    copy submissions into submitted/
    python -m helpers autograde [--lesson L] [--student S]
    python -m helpers feedback  [--lesson L] [--student S]   HTML into feedback/
    python -m helpers export    [--to grades.csv]

Every command takes ``--root FOLDER`` to work on another course root (a folder with a
copy of ``nbgrader_config.py``, ``answers/`` and ``notebooks/``); the default is the
repository.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import config

#: Folders a student submission may not bring along into ``submitted/``.
_SKIP_NAMES = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}


class GradingError(RuntimeError):
    """A grading step cannot go on; the message says which file or folder and the fix."""


def course_root(root: str | os.PathLike | None = None) -> Path:
    """The course root (folder of ``nbgrader_config.py``); the repository by default.

    Raises GradingError when the folder has no ``nbgrader_config.py``.
    """
    folder = Path(root).resolve() if root is not None else config.REPO_ROOT
    if not (folder / "nbgrader_config.py").is_file():
        raise GradingError(f"{folder} has no nbgrader_config.py: run the grading commands in the "
                           f"course repository, or copy its nbgrader_config.py into {folder}.")
    return folder


def lessons(root: str | os.PathLike | None = None, folder: str = "answers") -> list[str]:
    """Lesson names (``"03_loss_and_metrics"``) that have ``<folder>/<lesson>/<lesson>.ipynb``,
    in course order."""
    base = course_root(root) / folder
    return sorted(path.name for path in base.glob("*") if (path / f"{path.name}.ipynb").is_file())


def select_lessons(selection: list[str] | None, available: list[str]) -> list[str]:
    """The lessons of ``available`` whose name starts with one of ``selection`` (``["03"]``,
    ``["03_loss_and_metrics"]``); all of them when ``selection`` is empty.
    Raises GradingError naming the choices when nothing matches."""
    if not selection:
        return list(available)
    chosen = [name for name in available if any(name.startswith(item) for item in selection)]
    if not chosen:
        raise GradingError(f"No lesson matches {' '.join(selection)}; "
                           f"lessons: {', '.join(available) or '(none)'}.")
    return chosen


def _tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment with this interpreter's scripts folder first on PATH:
    nbgrader's gradebook runs the ``alembic`` command, which an environment that is not
    activated (``.venv/bin/python -m helpers ...``) would not find. The kernels nbgrader
    starts get :data:`helpers.course.KERNEL_ENV` where the environment does not set it."""
    from helpers import course

    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        path = scripts + os.pathsep + path if path else scripts
    return dict(course.kernel_env(), PATH=path, **(extra or {}))


@contextlib.contextmanager
def gradebook(root: str | os.PathLike | None = None):
    """Open the course's gradebook (``nbgrader.api.Gradebook``) for reading scores::

        with grading.gradebook() as gb:
            gb.find_submission("03_loss_and_metrics", "alice").score
    """
    from nbgrader.api import Gradebook

    coursedir = _coursedir(course_root(root))
    with _scripts_on_path(), Gradebook(coursedir.db_url, coursedir.course_id) as opened:
        yield opened


@contextlib.contextmanager
def _scripts_on_path():
    """Put this interpreter's scripts folder on PATH while the gradebook is open."""
    saved = os.environ.get("PATH")
    os.environ["PATH"] = _tool_env()["PATH"]
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def run_nbgrader(args: list[str], root: str | os.PathLike | None = None,
                 env: dict[str, str] | None = None, quiet: bool = False) -> int:
    """Run ``python -m nbgrader <args>`` in the course root with this interpreter (so the
    notebooks execute in this environment's ``python3`` kernel) and return its exit code.
    ``env`` entries are added to the current environment."""
    folder = course_root(root)
    command = [sys.executable, "-m", "nbgrader", *args]
    full_env = _tool_env(env)
    if quiet:
        completed = subprocess.run(command, cwd=folder, env=full_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if completed.returncode:
            sys.stderr.write(completed.stdout)
    else:
        print("$ nbgrader " + " ".join(args), flush=True)
        completed = subprocess.run(command, cwd=folder, env=full_env)
    return completed.returncode


def _coursedir(root: Path):
    """nbgrader's CourseDirectory configured from the root's ``nbgrader_config.py``."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    saved = dict(os.environ)  # the config sets variables for nbgrader's kernels: not for us
    try:
        loaded = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CourseDirectory(config=loaded)


def add_students(students: list[str], root: str | os.PathLike | None = None) -> None:
    """Create the students (ids as in ``submitted/<student>/``) in the gradebook if missing."""
    with gradebook(root) as opened:
        for student in students:
            opened.update_or_create_student(student)


# --- commands -----------------------------------------------------------------------------


def release(selection: list[str] | None = None, root: str | os.PathLike | None = None,
            quiet: bool = False) -> int:
    """Regenerate ``notebooks/<lesson>/`` from ``answers/<lesson>/`` with
    ``nbgrader generate_assignment --force`` (solutions and hidden tests removed, outputs
    cleared) for the selected lessons (default: all); returns 0 when every lesson worked."""
    folder = course_root(root)
    chosen = select_lessons(selection, lessons(folder))
    if not chosen:
        print(f"No lessons in {folder / 'answers'}: nothing to release.")
        return 0
    if selection:
        failed = [name for name in chosen
                  if run_nbgrader(["generate_assignment", name, "--force"], folder, quiet=quiet)]
    elif run_nbgrader(["generate_assignment", "[0-9]*", "--force"], folder, quiet=quiet):
        # every lesson in one nbgrader run (nbgrader expands the pattern itself)
        failed = [name for name in chosen
                  if not (folder / "notebooks" / name / f"{name}.ipynb").is_file()] or chosen
    else:
        failed = []
    orphans = sorted(set(lessons(folder, "notebooks")) - set(lessons(folder)))
    for name in orphans:
        print(f"notebooks/{name} has no answers/{name}: delete it, or restore its answer notebook.",
              file=sys.stderr)
    if failed:
        print(f"Release failed for {', '.join(failed)} (see the nbgrader messages above).",
              file=sys.stderr)
        return 1
    if not quiet:
        print(f"Released {len(chosen)} lesson(s) into {folder / 'notebooks'}.")
    return 0


def _copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_SKIP_NAMES))


def _files_in(folder: Path) -> list[str]:
    """Names of the .zip/.ipynb files in ``folder`` and of the files inside those zips."""
    names = []
    for path in folder.iterdir():
        if path.suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    names.extend(archive.namelist())
            except zipfile.BadZipFile as error:
                raise GradingError(f"{path} is not a readable zip file ({error}); "
                                   f"download it again or remove it.") from None
        elif path.is_file():
            names.append(path.name)
    return names


def collect(source: str | os.PathLike = "submissions", selection: list[str] | None = None,
            student: str | None = None, root: str | os.PathLike | None = None,
            quiet: bool = False) -> int:
    """Copy student submissions into ``submitted/<student>/<lesson>/`` and add the students
    to the gradebook; returns 0 on success.

    Two layouts are understood. Student folders, ``<source>/<student>/<lesson>/*.ipynb``
    (e.g. what students handed in on a shared drive), are copied as they are. Downloaded
    files, ``<source>/*.zip`` or ``<source>/*.ipynb`` (from an LMS), go through
    ``nbgrader zip_collect``: zips are extracted into ``downloaded/<lesson>/`` and each
    notebook is matched by ``.../<student>/<lesson>.ipynb`` or ``.../<student>_<lesson>.ipynb``
    (``FileNameCollectorPlugin.named_regexp`` in nbgrader_config.py).
    """
    folder = course_root(root)
    source = Path(source)
    if not source.is_absolute():
        source = (Path.cwd() / source) if (Path.cwd() / source).exists() else folder / source
    if not source.is_dir():
        raise GradingError(f"{source} does not exist: put the submissions there as "
                           f"<student>/<lesson>/<lesson>.ipynb, or as downloaded .zip/.ipynb files.")
    known = lessons(folder, "notebooks")
    if not known:
        raise GradingError(f"{folder / 'notebooks'} has no released lessons: run "
                           f"`python -m helpers release` first.")
    chosen = select_lessons(selection, known)
    submitted = folder / "submitted"
    loose = [path for path in source.iterdir() if path.is_file() and path.suffix in {".zip", ".ipynb"}]

    if loose:  # downloaded files: nbgrader zip_collect, one lesson at a time
        folders = [p.name for p in source.iterdir() if p.is_dir() and p.name not in _SKIP_NAMES]
        if folders:
            print(f"Ignoring the folders {', '.join(folders)} in {source}: a folder of downloaded "
                  f"files is read as .zip/.ipynb files only.", file=sys.stderr)
        names = _files_in(source)
        found = [name for name in chosen if any(n.endswith(f"{name}.ipynb") for n in names)]
        if not found:
            raise GradingError(f"No file in {source} ends with <lesson>.ipynb for "
                               f"{', '.join(chosen)}; name them <student>_<lesson>.ipynb "
                               f"or <student>/<lesson>.ipynb inside the zips.")
        status = 0
        for name in found:
            archive = folder / "downloaded" / name / "archive"
            if archive.exists():
                shutil.rmtree(archive)
            archive.mkdir(parents=True)
            for path in loose:
                shutil.copy2(path, archive / path.name)
            status |= run_nbgrader(["zip_collect", name, "--force"], folder, quiet=quiet)
        if status:
            return status
    else:  # student folders
        copied = 0
        for student_dir in sorted(p for p in source.iterdir() if p.is_dir()):
            if student_dir.name in _SKIP_NAMES or (student and student_dir.name != student):
                continue
            for lesson_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
                if lesson_dir.name in _SKIP_NAMES:
                    continue
                if lesson_dir.name not in known:
                    print(f"Skipping {lesson_dir}: no released lesson of that name "
                          f"(lessons: {', '.join(known)}).", file=sys.stderr)
                    continue
                if lesson_dir.name not in chosen:
                    continue
                if not list(lesson_dir.glob("*.ipynb")):
                    print(f"Skipping {lesson_dir}: no notebook in it.", file=sys.stderr)
                    continue
                _copy_tree(lesson_dir, submitted / student_dir.name / lesson_dir.name)
                copied += 1
        if not quiet:
            print(f"Collected {copied} submission(s) from {source} into {submitted}.")
    students = sorted(p.name for p in submitted.glob("*") if p.is_dir()) if submitted.is_dir() else []
    add_students(students, folder)
    return 0


def _submitted_lessons(folder: Path, student: str | None) -> list[str]:
    pattern = f"{student or '*'}/*"
    return sorted({p.name for p in (folder / "submitted").glob(pattern) if p.is_dir()})


def autograde(lesson: list[str] | None = None, student: str | None = None,
              root: str | os.PathLike | None = None, env: dict[str, str] | None = None,
              quiet: bool = False) -> int:
    """Run ``nbgrader autograde <lesson> --force`` once per collected lesson (all its students
    in one call, or only ``student``): test cells are restored from the source, hidden tests
    put back, every notebook executed and scored into the gradebook. Returns nbgrader's
    worst exit code (non-zero also when only one submission failed to execute; the scores
    of the others are saved)."""
    folder = course_root(root)
    collected = _submitted_lessons(folder, student)
    if not collected:
        raise GradingError(f"Nothing collected in {folder / 'submitted'}: run "
                           f"`python -m helpers collect` first.")
    status = 0
    for name in select_lessons(lesson, collected):
        args = ["autograde", name, "--force"] + (["--student", student] if student else [])
        status = max(status, run_nbgrader(args, folder, env=env, quiet=quiet))
    return status


def feedback(lesson: list[str] | None = None, student: str | None = None,
             root: str | os.PathLike | None = None, quiet: bool = False) -> int:
    """Write HTML feedback ``feedback/<student>/<lesson>/<lesson>.html`` for every autograded
    submission (``nbgrader generate_feedback``); returns 0 on success."""
    folder = course_root(root)
    graded = sorted({p.name for p in (folder / "autograded").glob(f"{student or '*'}/*") if p.is_dir()})
    if not graded:
        raise GradingError(f"Nothing autograded in {folder / 'autograded'}: run "
                           f"`python -m helpers autograde` first.")
    status = 0
    for name in select_lessons(lesson, graded):
        args = ["generate_feedback", name, "--force"] + (["--student", student] if student else [])
        status = max(status, run_nbgrader(args, folder, quiet=quiet))
    return status


def export(to: str | os.PathLike = "grades.csv", root: str | os.PathLike | None = None,
           quiet: bool = False) -> int:
    """Export every score of the gradebook to a CSV file (``nbgrader export``; one row per
    student and lesson: score, max_score, timestamp, late penalty); returns 0 on success."""
    folder = course_root(root)
    target = Path(to)
    if not target.is_absolute():
        target = folder / target
    return run_nbgrader(["export", f"--to={target}"], folder, quiet=quiet)


# --- command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers",
                                     description="Instructor commands around nbgrader.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name, help_text):
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--root", default=None,
                             help="course root with nbgrader_config.py (default: the repository)")
        return command

    command = add("release", "regenerate notebooks/ from answers/ (nbgrader generate_assignment)")
    command.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    command = add("collect", "copy submissions into submitted/ and add the students to the gradebook")
    command.add_argument("--from", dest="source", default="submissions",
                         help="submissions/<student>/<lesson>/*.ipynb, or a folder of downloaded "
                              ".zip/.ipynb files (default: submissions)")
    command.add_argument("--lesson", action="append", help="only this lesson (repeatable)")
    command.add_argument("--student", help="only this student (student folders only)")
    for name, text in (("autograde", "execute and score the collected submissions (nbgrader autograde)"),
                       ("feedback", "HTML feedback per autograded submission (nbgrader generate_feedback)")):
        command = add(name, text)
        command.add_argument("--lesson", action="append", help="only this lesson (repeatable)")
        command.add_argument("--student", help="only this student")
    command = add("export", "export the gradebook to CSV (nbgrader export)")
    command.add_argument("--to", default="grades.csv", help="CSV file (default: grades.csv in the course root)")
    return parser


def _absolute(argv: list[str]) -> list[str]:
    """``argv`` with the paths of --root, --from and --to made absolute (the command is
    re-run from the repository root)."""
    result, expect_path = [], False
    for item in argv:
        if expect_path:
            item, expect_path = str(Path(item).resolve()), False
        elif item in {"--root", "--from", "--to"}:
            expect_path = True
        elif item.split("=", 1)[0] in {"--root", "--from", "--to"}:
            key, value = item.split("=", 1)
            item = f"{key}={Path(value).resolve()}"
        result.append(item)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m helpers release|collect|autograde|feedback|export``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if importlib.util.find_spec("nbgrader") is None and not os.environ.get("UNET_COURSE_BOOTSTRAPPED"):
        # a bare Python (`python -m helpers release`): run inside the course environment,
        # created on first use like `python -m helpers course` does
        from helpers import __main__ as cli

        return cli._reexec_inside(cli.ensure_environment(), _absolute(argv))
    try:
        if args.command == "release":
            return release(args.lessons, args.root)
        if args.command == "collect":
            return collect(args.source, args.lesson, args.student, args.root)
        if args.command == "autograde":
            return autograde(args.lesson, args.student, args.root)
        if args.command == "feedback":
            return feedback(args.lesson, args.student, args.root)
        if args.command == "export":
            return export(args.to, args.root)
    except GradingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
