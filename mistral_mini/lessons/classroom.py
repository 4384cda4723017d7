"""For teachers without nbgrader: hand out a student version of the notebooks, then grade it.

    python -m mistral_mini.lessons.classroom student notebooks/ student/      (or: make student)
    python -m mistral_mini.lessons.classroom grade student/ [--json]

``student`` writes a copy of every notebook in which each solution (between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, nbgrader's markers) becomes ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, with
every output and widget state cleared. It never overwrites a file that exists (a student's work may be in
it) unless given ``--force``, and says what it skipped.

``grade`` runs every notebook of a folder and prints, per exercise, pass, fail or not done with the check's
message; ``--json`` prints one JSON list of ``{"notebook", "exercise", "status", "message"}`` instead.
Teachers with nbgrader use its own commands: the notebooks carry its cell metadata (``exercise_cells``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .exercise_cells import BEGIN_SOLUTION, END_SOLUTION, is_solution_cell, source_of
from .grading import format_table, grade_notebook

_CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")


def strip_solutions(source: str) -> str:
    """Replace every BEGIN/END SOLUTION region of a cell's source by the stub, at the BEGIN line's indent.

    Lines before BEGIN and after END are kept, so a function's signature and docstring stay in place.
    """
    lines = source.split("\n")
    out: list[str] = []
    inside = False
    for number, line in enumerate(lines, start=1):
        if line.strip() == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"line {number}: {BEGIN_SOLUTION} inside another solution")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in _CODE_STUB)
        elif line.strip() == END_SOLUTION:
            if not inside:
                raise ValueError(f"line {number}: {END_SOLUTION} without a {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN_SOLUTION} is never closed by {END_SOLUTION}")
    return "\n".join(out)


def student_notebook(notebook: dict) -> dict:
    """A student copy of a notebook loaded from JSON: solutions stubbed, outputs and widget state gone."""
    notebook = json.loads(json.dumps(notebook))  # a deep copy; the teacher's version stays untouched
    for cell in notebook.get("cells", []):
        if is_solution_cell(cell):
            cell["source"] = strip_solutions(source_of(cell))
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
    notebook.get("metadata", {}).pop("widgets", None)
    return notebook


def write_student_copies(src_dir: str | Path, out_dir: str | Path, force: bool = False
                         ) -> tuple[list[Path], list[Path]]:
    """Write a student copy of every ``*.ipynb`` in ``src_dir`` into ``out_dir``.

    Returns (written, skipped): a file that already exists is skipped, since it may hold a student's work,
    unless ``force``.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"no folder {src_dir}: expected the folder holding the notebooks")
    sources = sorted(src_dir.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no *.ipynb in {src_dir}")
    if out_dir.resolve() == src_dir.resolve():
        raise ValueError("OUT_DIR must differ from SRC_DIR: the student copies would overwrite the solutions")
    copies = {}
    for path in sources:  # every copy is made before any is written: a broken notebook writes nothing
        try:
            copies[path.name] = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    for name, copy in copies.items():
        target = out_dir / name
        if target.exists() and not force:
            skipped.append(target)
            continue
        target.write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written, skipped


def _student(args: argparse.Namespace) -> int:
    written, skipped = write_student_copies(args.src_dir, args.out_dir, force=args.force)
    for path in written:
        print(f"wrote {path}")
    for path in skipped:
        print(f"skipped {path}: it exists and may hold a student's work (--force overwrites it)")
    return 0


def _grade(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    paths = sorted(folder.glob("*.ipynb")) if folder.is_dir() else [folder]
    if not paths or not paths[0].exists():
        raise FileNotFoundError(f"no notebooks at {folder}: give a folder of student notebooks, or one notebook")
    grades = []
    for path in paths:
        if not args.json:
            print(f"running {path.name} ...", file=sys.stderr, flush=True)
        graded = grade_notebook(path, timeout=args.timeout)
        grades.extend(graded.grades)
        for error in graded.other_errors:
            print(f"{path.name}: {error}", file=sys.stderr)
    print(json.dumps([g.as_dict() for g in grades], indent=1) if args.json else format_table(grades))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mistral_mini.lessons.classroom",
                                     description="Tools for teachers using the mistral_mini notebooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write student copies: solutions stubbed, outputs cleared")
    student.add_argument("src_dir", help="folder with the notebooks (with solutions)")
    student.add_argument("out_dir", help="folder to write the student copies to")
    student.add_argument("--force", action="store_true", help="overwrite copies that already exist")
    student.set_defaults(run=_student)
    grade = commands.add_parser("grade", help="run student notebooks; report pass / fail / not done per exercise")
    grade.add_argument("dir", help="a folder of student notebooks, or one notebook")
    grade.add_argument("--json", action="store_true", help="print one JSON list of results, for a gradebook")
    grade.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    grade.set_defaults(run=_grade)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
