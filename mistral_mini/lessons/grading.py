"""Grading without nbgrader: run each student notebook, read every check cell's verdict.

A check cell (see ``exercise_cells``) prints its report and raises ``ExerciseFailed`` when the answer is
wrong, ``ExerciseNotDone`` while the function still raises ``NotImplementedError``; a cell that runs clean
passed. The notebook runs to the end whatever fails, so one wrong answer does not hide the next.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .exercise_cells import check_called, exercise_name, is_solution_cell

STATUSES = ("pass", "fail", "not done")


@dataclass(frozen=True)
class Grade:
    """One exercise of one notebook: ``status`` is "pass", "fail" or "not done"; ``message`` says why."""

    notebook: str
    exercise: str
    status: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Graded:
    """A notebook's grades, and the errors of cells that are not checks (a student's crash, a missing file)."""

    grades: list[Grade]
    other_errors: list[str]


def _stdout(cell: dict) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _error(cell: dict) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def verdict(cell: dict) -> tuple[str, str]:
    """(status, message) of an executed check cell."""
    error = _error(cell)
    if error is None:
        if cell.get("execution_count") is None:
            return "fail", "the check did not run: the notebook stopped before this cell"
        return "pass", _stdout(cell).strip()
    if error["ename"] == "ExerciseNotDone":
        return "not done", error["evalue"]
    if error["ename"] == "ExerciseFailed":
        return "fail", error["evalue"]
    return "fail", (f"{error['ename']}: {error['evalue']} (did the exercise's own cell run without an error? "
                    "a check needs the function that cell defines)")


def grade_cells(name: str, notebook: dict) -> Graded:
    """The grades of an executed notebook (``name`` labels them)."""
    grades, others = [], []
    for index, cell in enumerate(notebook.get("cells", [])):
        check = check_called(cell)
        if check is not None:
            status, message = verdict(cell)
            grades.append(Grade(name, exercise_name(check), status, message))
        elif cell.get("cell_type") == "code" and (error := _error(cell)) is not None:
            where = "an exercise's own cell" if is_solution_cell(cell) else "a cell that is not an exercise"
            others.append(f"cell {index} ({where}) raised {error['ename']}: {error['evalue']}")
    return Graded(grades, others)


def grade_notebook(path: str | Path, timeout: int = 600) -> Graded:
    """Run the notebook at ``path`` in a fresh kernel, from its own folder, and grade it."""
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    stopped = None
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError) as err:  # later cells never ran; verdict() says so
        stopped = f"the notebook stopped: {type(err).__name__}: {str(err).splitlines()[0]}"
    graded = grade_cells(path.name, notebook)
    return Graded(graded.grades, graded.other_errors + ([stopped] if stopped else []))


def format_table(grades: list[Grade]) -> str:
    """A plain-text table, one row per exercise; a failure's report is indented below its row."""
    width_nb = max([len("notebook"), *(len(g.notebook) for g in grades)])
    width_ex = max([len("exercise"), *(len(g.exercise) for g in grades)])
    lines = [f"{'notebook':<{width_nb}}  {'exercise':<{width_ex}}  status", "-" * (width_nb + width_ex + 12)]
    for g in grades:
        lines.append(f"{g.notebook:<{width_nb}}  {g.exercise:<{width_ex}}  {g.status}")
        if g.status == "fail":
            lines.extend(f"{'':<{width_nb + 2}}{line}" for line in g.message.splitlines())
    counts = ", ".join(f"{sum(g.status == s for g in grades)} {s}" for s in STATUSES)
    lines.append(f"{len(grades)} exercises: {counts}")
    return "\n".join(lines)
