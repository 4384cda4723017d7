"""Which cells of a notebook are exercises, and the nbgrader metadata that says so. The rule lives here only.

An exercise is two code cells:

- a **solution cell**: it defines the learner's function, whose body holds the answer between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``. Only function bodies are stubbed, so a student's notebook,
  where each body is ``raise NotImplementedError()``, still runs from top to bottom;
- a **check cell**: it calls ``exercises.check_<name>(...)``, which raises when the answer is wrong or
  missing, so the cell fails.

In nbgrader's terms the first is a solution cell (``solution: true``) and the second an autograded test cell
(``grade: true``, locked, one point). ``tools/refresh_notebooks.py`` writes this metadata into every notebook,
so ``nbgrader generate_assignment`` and ``nbgrader autograde`` work on them unchanged.
"""

from __future__ import annotations

import re

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
NBGRADER_SCHEMA = 3  # the cell metadata version nbgrader 0.9 writes and reads
POINTS = 1  # per check cell

_CHECK_CALL = re.compile(r"\bexercises\.(check_\w+)\(")
_FUNCTION = re.compile(r"^def (\w+)\(", re.MULTILINE)


def source_of(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def is_solution_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and any(
        line.strip() == BEGIN_SOLUTION for line in source_of(cell).splitlines())


def check_called(cell: dict) -> str | None:
    """``"check_rope"`` for a cell that calls ``exercises.check_rope(...)``, else None."""
    if cell.get("cell_type") != "code":
        return None
    match = _CHECK_CALL.search(source_of(cell))
    return match.group(1) if match else None


def exercise_name(check: str) -> str:
    """The name a grade report gives an exercise: ``check_allowed_pairs`` -> ``allowed_pairs``."""
    return check.removeprefix("check_")


def _solution_id(cell: dict, index: int) -> str:
    functions = _FUNCTION.findall(source_of(cell))
    if not functions:
        raise ValueError(f"cell {index}: a solution cell must define a function (its answer sits in the "
                         "function's body, so the student's stub raises only when the function is called)")
    return functions[-1]


def nbgrader_metadata(cell: dict, index: int) -> dict | None:
    """The ``nbgrader`` entry of cell ``index``'s metadata, or None for a cell that is not part of an exercise."""
    common = {"schema_version": NBGRADER_SCHEMA, "task": False}
    if is_solution_cell(cell):
        return {**common, "grade": False, "grade_id": _solution_id(cell, index), "locked": False,
                "solution": True}
    check = check_called(cell)
    if check is not None:
        return {**common, "grade": True, "grade_id": check, "locked": True, "points": POINTS, "solution": False}
    return None


def tag_exercise_cells(notebook: dict) -> dict:
    """Write the nbgrader metadata of every cell of ``notebook`` (in place) and return it.

    Raises ValueError when two cells would share a grade id, or a check cell comes before any solution.
    """
    seen: dict[str, int] = {}
    solutions = 0
    for index, cell in enumerate(notebook.get("cells", [])):
        entry = nbgrader_metadata(cell, index)
        metadata = cell.setdefault("metadata", {})
        if entry is None:
            metadata.pop("nbgrader", None)
            continue
        if entry["grade_id"] in seen:
            raise ValueError(f"cells {seen[entry['grade_id']]} and {index} share the grade id {entry['grade_id']!r}: "
                             "each exercise needs its own function and its own check")
        seen[entry["grade_id"]] = index
        solutions += entry["solution"]
        if entry["grade"] and not solutions:
            raise ValueError(f"cell {index} checks {entry['grade_id']} before any solution cell defines it")
        metadata["nbgrader"] = entry
    return notebook
