"""Command line for the data sets: ``python -m helpers.data <command>`` (or ``python -m helpers data``).

* ``list``                         every data set the course knows and whether it is on disk
* ``info NAME``                    official page, licence, citation and raw layout of a public set
* ``generate NAME``                generate a synthetic set now (it is otherwise made on first use)
* ``download NAME [--to DIR]``     download the raw archive where a direct URL is known
* ``prepare NAME SOURCE``          convert a raw download (archive or folder) into the course layout,
                                   e.g. ``python -m helpers.data prepare montgomery NLM-MontgomeryCXRSet.zip --size 256``
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from helpers import config, data
from helpers.data import registry
from helpers.data._store import DatasetError, read_metadata, remove_leftovers, remove_stale_locks


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _tidy(folder: Path) -> None:
    """Remove (and name) what killed runs left in ``folder``: scratch folders and lock files
    whose owner is gone; name partial downloads, which the next download resumes."""
    for leftover in remove_leftovers(folder) + remove_stale_locks(folder):
        print(f"removed {leftover}, left by an interrupted run")
    downloads = folder / "downloads"
    if downloads.is_dir():
        for partial in sorted(downloads.glob("*.part")):
            print(f"{partial}: an interrupted download; `python -m helpers data download` resumes it "
                  f"(or delete it)")


def _list() -> int:
    folder = config.data_dir()
    if folder.is_dir():
        _tidy(folder)
    rows = [("name", "kind", "lessons", "on disk", "folder")]
    lessons = {"cxr_synthetic": "01-05", "lung_ct_synthetic": "06 (small)", "lung_ct_synthetic_full": "06",
               "liver_ct_synthetic": "07",
               "brats_synthetic": "08"}
    for name in sorted(data.GENERATORS):
        folder = data.dataset_dir(name)
        metadata = read_metadata(folder)
        present = ("yes" if metadata and metadata.get("complete") else
                   "no (interrupted; remade on first use)" if metadata else "no (made on first use)")
        rows.append((name, "synthetic", lessons[name], present, str(folder)))
    for name, entry in sorted(registry.DATASETS.items()):
        present = "yes" if registry.is_prepared(name) else (
            "no (download + prepare)" if entry.url else "no (get by hand + prepare)")
        rows.append((name, entry.kind, entry.lessons, present, str(config.data_dir() / name)))
    _table(rows)
    print("\nIn a lesson, set DATASET = \"<name>\" in its data set cell to use a prepared set.")
    return 0


def _info(name: str) -> int:
    entry = registry.get(name)
    for label, value in (("title", entry.title), ("lessons", entry.lessons), ("page", entry.homepage),
                         ("licence", entry.licence), ("citation", entry.citation),
                         ("raw layout", entry.raw_layout), ("download", entry.url or "by hand (see page)"),
                         ("notes", entry.notes)):
        if value:
            print(f"{label:>10}: {value}")
    return 0


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub.add_parser("list", help="list the data sets and whether they are on disk")
    info = sub.add_parser("info", help="page, licence, citation and raw layout of a public data set")
    info.add_argument("name", choices=sorted(registry.DATASETS))
    generate = sub.add_parser("generate", help="generate a synthetic data set now")
    generate.add_argument("name", choices=sorted(data.GENERATORS))
    generate.add_argument("--force", action="store_true", help="delete the folder and regenerate it")
    download = sub.add_parser("download", help="download the raw archive of a public data set")
    download.add_argument("name", choices=sorted(registry.DATASETS))
    download.add_argument("--to", type=Path, default=None, help="folder for the archive (default data/downloads)")
    download.add_argument("--prepare", action="store_true", help="prepare the archive once downloaded")
    download.add_argument("--size", type=int, default=config.CXR_IMAGE_SIZE)
    prepare = sub.add_parser("prepare", help="convert a raw download into the course layout")
    prepare.add_argument("name", choices=sorted(registry.DATASETS))
    prepare.add_argument("source", type=Path, help="the downloaded archive or the folder it extracts to")
    prepare.add_argument("--dest", type=Path, default=None, help="output folder (default data/NAME)")
    prepare.add_argument("--size", type=int, default=config.CXR_IMAGE_SIZE,
                         help="side in pixels of prepared chest X-rays (default %(default)s)")
    prepare.add_argument("--skip-bad", action="store_true", help="leave bad cases out and list them")
    prepare.add_argument("--force", action="store_true", help="replace a non-empty destination")
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. `kill`, a job scheduler) unwinds like Ctrl-C: scratch folders and locks are removed.
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from helpers.data.download import DownloadError

    try:
        if args.command == "list":
            return _list()
        if args.command == "info":
            return _info(args.name)
        if args.command == "generate":
            print(f"{args.name}: {data.ensure_dataset(args.name, force=args.force)}")
            return 0
        if args.command == "download":
            from helpers.data.download import recorded_sha256

            archive = registry.fetch(args.name, args.to)
            print(f"{args.name}: {archive}\nSHA-256: {recorded_sha256(archive)} (recorded in {archive.name}.sha256)")
            if not args.prepare:
                print(f"Next: python -m helpers data prepare {args.name} {archive}")
                return 0
            print(registry.prepare(args.name, archive, size=args.size))
            return 0
        report = registry.prepare(args.name, args.source, args.dest, size=args.size,
                                  skip_bad=args.skip_bad, force=args.force)
        print(report)
        return 0
    except (DatasetError, DownloadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
