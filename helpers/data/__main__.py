"""Command line for the data sets: ``python -m helpers.data <command>``.

* ``list``                 the data sets the course knows and whether they are on disk
* ``generate NAME``        generate a synthetic set now (it is otherwise made on first use)
"""

from __future__ import annotations

import argparse
import sys

from helpers import data
from helpers.data._store import DatasetError, read_metadata


def _list() -> int:
    rows = [("name", "kind", "on disk", "folder")]
    for name in sorted(data.GENERATORS):
        folder = data.dataset_dir(name)
        metadata = read_metadata(folder)
        present = "yes" if metadata and metadata.get("complete") else "no (made on first use)"
        rows.append((name, "synthetic", present, str(folder)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub.add_parser("list", help="list the data sets and whether they are on disk")
    generate = sub.add_parser("generate", help="generate a synthetic data set now")
    generate.add_argument("name", choices=sorted(data.GENERATORS))
    generate.add_argument("--force", action="store_true", help="delete the folder and regenerate it")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    try:
        folder = data.ensure_dataset(args.name, force=args.force)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.name}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
