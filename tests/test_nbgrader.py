"""nbgrader itself takes the notebooks unchanged: `generate_assignment` releases one, `autograde` gives the
released copy 0 points and the teacher's solutions full points."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_attention_and_masks.ipynb"


def nbgrader(course: Path, *args: str) -> None:
    # nbgrader runs `alembic` from PATH: put the environment's own bin folder first, as activating it would.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True,
                            text=True, check=False, timeout=900, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def check_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]


def test_nbgrader_generates_and_autogrades_a_notebook(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'mistral_mini'\nc.Execute.timeout = 600\n")
    source = tmp_path / "source" / "ps1"
    source.mkdir(parents=True)
    shutil.copy(NOTEBOOK, source)
    nbgrader(tmp_path, "generate_assignment", "ps1")

    released = tmp_path / "release" / "ps1" / NOTEBOOK.name
    released_cells = json.loads(released.read_text())["cells"]
    solutions = [c for c in released_cells if c["metadata"].get("nbgrader", {}).get("solution")]
    assert solutions and all("raise NotImplementedError()" in "".join(c["source"]) for c in solutions)
    assert not any("### BEGIN SOLUTION" in "".join(c["source"]) for c in released_cells)
    assert all(c["metadata"]["nbgrader"]["locked"] for c in check_cells({"cells": released_cells}))

    for student, notebook in (("unchanged", released), ("solved", NOTEBOOK)):
        (tmp_path / "submitted" / student / "ps1").mkdir(parents=True)
        shutil.copy(notebook, tmp_path / "submitted" / student / "ps1" / NOTEBOOK.name)
    nbgrader(tmp_path, "autograde", "ps1")
    nbgrader(tmp_path, "export")

    with open(tmp_path / "grades.csv", newline="") as f:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)}
    n_checks = len(check_cells(json.loads(NOTEBOOK.read_text())))
    assert scores == {"unchanged": (0.0, n_checks), "solved": (n_checks, n_checks)}

    # An unanswered check says "not done" in a readable line, not with a traceback from inside the check.
    graded = json.loads((tmp_path / "autograded" / "unchanged" / "ps1" / NOTEBOOK.name).read_text())
    stream, error = check_cells(graded)[0]["outputs"]
    assert "".join(stream["text"]).startswith("NOT DONE: ") and error["ename"] == "ExerciseNotDone"
    assert len(error["traceback"]) == 1
