"""The student version of the notebooks, for teachers.

Exercise cells follow nbgrader's convention: the solution sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``. The command::

    python -m mistral_mini.lessons.classroom student notebooks/ student_notebooks/

writes a copy of every notebook in which each solution is replaced by ``# YOUR CODE HERE`` /
``raise NotImplementedError()`` (``YOUR ANSWER HERE`` in a markdown cell), and every output and widget state
is cleared. The exercise checks (``mistral_mini.lessons.exercises``) then report "not implemented yet" until
the learner fills the cell in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
_CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_ANSWER_STUB = ("YOUR ANSWER HERE",)


def strip_solutions(source: str, stub: tuple[str, ...] = _CODE_STUB) -> str:
    """Replace every BEGIN/END SOLUTION region of a cell's source by ``stub``, at the BEGIN line's indent.

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
            out.extend(indent + s for s in stub)
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
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        stub = _CODE_STUB if cell.get("cell_type") == "code" else _ANSWER_STUB
        cell["source"] = strip_solutions(text, stub)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
    notebook.get("metadata", {}).pop("widgets", None)
    return notebook


def write_student_copies(src_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write a student copy of every ``*.ipynb`` in ``src_dir`` into ``out_dir``; return the paths written."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"no folder {src_dir}: expected the folder holding the notebooks")
    sources = sorted(src_dir.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no *.ipynb in {src_dir}")
    if out_dir.resolve() == src_dir.resolve():
        raise ValueError("OUT_DIR must differ from SRC_DIR: the student copies would overwrite the solutions")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        try:
            copy = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        target = out_dir / path.name
        target.write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m mistral_mini.lessons.classroom student SRC_DIR OUT_DIR``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mistral_mini.lessons.classroom",
                                     description="Tools for teachers using the mistral_mini notebooks.")
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write student copies: solutions stubbed, outputs cleared")
    student.add_argument("src_dir", help="folder with the notebooks (with solutions)")
    student.add_argument("out_dir", help="folder to write the student copies to")
    args = parser.parse_args(argv)
    try:
        written = write_student_copies(args.src_dir, args.out_dir)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
