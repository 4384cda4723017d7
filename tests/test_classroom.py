"""The classroom: exercise cells carry nbgrader's metadata, the student command stubs without overwriting a
student's work, and `grade` reads each check cell's verdict from a real kernel run."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mistral_mini.lessons import classroom, exercise_cells, grading

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))

SOLUTION_CELL = """def rms_norm(x, weight, eps):
    \"\"\"Your RMSNorm.\"\"\"
    scale = 1.0
    ### BEGIN SOLUTION
    ms = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(ms + eps) * weight
    ### END SOLUTION

answer = 42"""


def test_strip_solutions_keeps_indentation_and_surrounding_lines():
    assert classroom.strip_solutions(SOLUTION_CELL) == """def rms_norm(x, weight, eps):
    \"\"\"Your RMSNorm.\"\"\"
    scale = 1.0
    # YOUR CODE HERE
    raise NotImplementedError()

answer = 42"""


def test_strip_solutions_rejects_unbalanced_markers():
    with pytest.raises(ValueError, match="never closed"):
        classroom.strip_solutions("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="without"):
        classroom.strip_solutions("x = 1\n### END SOLUTION")


# A notebook small enough to run in a kernel in a few seconds: one exercise that passes in the teacher's
# version, written against a real check of the package.
LAYERS_SOLUTION = """from mistral_mini.lessons import exercises


def my_layers_needed(distance, window):
    ### BEGIN SOLUTION
    return -(-distance // (window - 1))
    ### END SOLUTION"""

ALLOWED_PAIRS_SOLUTION = """def my_allowed_pairs(T, W):
    ### BEGIN SOLUTION
    return sum(min(i + 1, W) for i in range(T))
    ### END SOLUTION"""


def code(source, outputs=(), count=None, metadata=None):
    return {"cell_type": "code", "execution_count": count, "metadata": metadata or {}, "outputs": list(outputs),
            "source": source.splitlines(keepends=True)}


def make_notebook(pairs_solution=ALLOWED_PAIRS_SOLUTION, tag=True):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "Some prose."]},
            code(LAYERS_SOLUTION, count=3, metadata={"execution": {"x": 1}, "tags": ["t"]},
                 outputs=[{"output_type": "stream", "name": "stdout", "text": ["PASS\n"]}]),
            code("exercises.check_layers_needed(my_layers_needed)"),
            code("print('between the exercises')"),
            code(pairs_solution),
            code("exercises.check_allowed_pairs(my_allowed_pairs)"),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "widgets": {"state": {}}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    return exercise_cells.tag_exercise_cells(notebook) if tag else notebook


# ---------------------------------------------------------------------------------------------------------
# the nbgrader metadata
# ---------------------------------------------------------------------------------------------------------


def test_exercise_cells_get_nbgrader_metadata():
    cells = make_notebook()["cells"]
    assert "nbgrader" not in cells[0]["metadata"] and "nbgrader" not in cells[3]["metadata"]
    solution, check = cells[1]["metadata"]["nbgrader"], cells[2]["metadata"]["nbgrader"]
    assert solution == {"grade": False, "grade_id": "my_layers_needed", "locked": False, "schema_version": 3,
                        "solution": True, "task": False}
    assert check == {"grade": True, "grade_id": "check_layers_needed", "locked": True, "points": 1,
                     "schema_version": 3, "solution": False, "task": False}
    assert cells[1]["metadata"]["tags"] == ["t"]  # other metadata is kept


def test_exercise_cells_are_refused_when_nbgrader_would_refuse_them():
    twice = make_notebook()
    twice["cells"].append(copy.deepcopy(twice["cells"][2]))
    with pytest.raises(ValueError, match="share the grade id 'check_layers_needed'"):
        exercise_cells.tag_exercise_cells(twice)
    no_function = make_notebook(pairs_solution="### BEGIN SOLUTION\nx = 1\n### END SOLUTION", tag=False)
    with pytest.raises(ValueError, match="must define a function"):
        exercise_cells.tag_exercise_cells(no_function)
    check_first = make_notebook(tag=False)
    check_first["cells"].insert(1, check_first["cells"].pop(2))
    with pytest.raises(ValueError, match="before any solution"):
        exercise_cells.tag_exercise_cells(check_first)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_every_notebook_carries_its_exercise_metadata(path):
    """The committed notebook's metadata is what the rule writes: refresh_notebooks.py was run after edits."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    retagged = exercise_cells.tag_exercise_cells(copy.deepcopy(notebook))
    assert retagged == notebook, f"run tools/refresh_notebooks.py {path.name}"
    entries = [c["metadata"]["nbgrader"] for c in notebook["cells"] if "nbgrader" in c["metadata"]]
    assert sum(e["solution"] for e in entries) >= 2 and sum(e["grade"] for e in entries) >= 2
    for cell in notebook["cells"]:  # the student version of a markdown cell must not lose text to nbgrader
        if cell["cell_type"] == "markdown":
            assert exercise_cells.BEGIN_SOLUTION not in exercise_cells.source_of(cell)


# ---------------------------------------------------------------------------------------------------------
# the student command
# ---------------------------------------------------------------------------------------------------------


def student_command(*args):
    return subprocess.run([sys.executable, "-m", "mistral_mini.lessons.classroom", "student", *map(str, args)],
                          capture_output=True, text=True, check=False)


def test_student_command_writes_stubbed_copies(tmp_path):
    src, out = tmp_path / "teacher", tmp_path / "student"
    src.mkdir()
    (src / "01_demo.ipynb").write_text(json.dumps(make_notebook()))
    result = student_command(src, out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / '01_demo.ipynb'}" in result.stdout
    cells = json.loads((out / "01_demo.ipynb").read_text())["cells"]
    solution = "".join(cells[1]["source"])
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in solution
    assert "-(-distance" not in solution and "def my_layers_needed(distance, window):" in solution
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells[1:])
    assert "execution" not in cells[1]["metadata"] and cells[1]["metadata"]["nbgrader"]["solution"]
    assert "".join(cells[0]["source"]) == "# Title\nSome prose."
    assert "-(-distance" in (src / "01_demo.ipynb").read_text()  # the teacher's notebook is untouched


def test_student_command_never_overwrites_a_students_work_unless_forced(tmp_path):
    src, out = tmp_path / "teacher", tmp_path / "student"
    src.mkdir()
    out.mkdir()
    (src / "01_demo.ipynb").write_text(json.dumps(make_notebook()))
    (src / "02_other.ipynb").write_text(json.dumps(make_notebook()))
    (out / "01_demo.ipynb").write_text("a student's work")
    result = student_command(src, out)
    assert result.returncode == 0, result.stderr
    assert (out / "01_demo.ipynb").read_text() == "a student's work"
    assert f"skipped {out / '01_demo.ipynb'}" in result.stdout and "--force" in result.stdout
    assert f"wrote {out / '02_other.ipynb'}" in result.stdout
    forced = student_command(src, out, "--force")
    assert forced.returncode == 0 and "NotImplementedError" in (out / "01_demo.ipynb").read_text()


def test_student_command_refuses_bad_folders(tmp_path, capsys):
    (tmp_path / "a.ipynb").write_text(json.dumps(make_notebook()))
    assert classroom.main(["student", str(tmp_path), str(tmp_path)]) == 1
    assert "must differ" in capsys.readouterr().err
    assert classroom.main(["student", str(tmp_path / "nope"), str(tmp_path / "out")]) == 1
    assert "no folder" in capsys.readouterr().err


def test_a_broken_notebook_writes_no_copy(tmp_path, capsys):
    src, out = tmp_path / "teacher", tmp_path / "student"
    src.mkdir()
    broken = make_notebook()
    broken["cells"][4]["source"] = ["def f():\n", "    ### BEGIN SOLUTION\n", "    return 1\n"]
    (src / "01_fine.ipynb").write_text(json.dumps(make_notebook()))
    (src / "02_broken.ipynb").write_text(json.dumps(broken))
    assert classroom.main(["student", str(src), str(out)]) == 1
    assert "02_broken.ipynb" in capsys.readouterr().err and not out.exists()


# ---------------------------------------------------------------------------------------------------------
# grading, in a real kernel
# ---------------------------------------------------------------------------------------------------------


def test_grade_reports_pass_fail_and_not_done(tmp_path):
    wrong = ALLOWED_PAIRS_SOLUTION.replace("min(i + 1, W)", "W")  # every query counted with W keys
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "01_demo.ipynb").write_text(json.dumps(make_notebook(pairs_solution=wrong)))
    classroom.write_student_copies(folder, tmp_path / "student")
    (tmp_path / "student" / "01_demo.ipynb").rename(folder / "02_untouched.ipynb")
    result = subprocess.run([sys.executable, "-m", "mistral_mini.lessons.classroom", "grade", str(folder), "--json"],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    grades = json.loads(result.stdout)
    assert [(g["notebook"], g["exercise"], g["status"]) for g in grades] == [
        ("01_demo.ipynb", "layers_needed", "pass"), ("01_demo.ipynb", "allowed_pairs", "fail"),
        ("02_untouched.ipynb", "layers_needed", "not done"), ("02_untouched.ipynb", "allowed_pairs", "not done")]
    assert grades[0]["message"].startswith("PASS: layers_needed")
    assert "mistake: every query counted with W keys" in grades[1]["message"]
    assert "not done yet" in grades[2]["message"]
    assert "raised" not in result.stderr  # no cell other than the checks failed


def test_grade_table_and_errors_outside_the_checks():
    notebook = make_notebook()
    notebook["cells"][3]["outputs"] = [{"output_type": "error", "ename": "KeyError", "evalue": "'x'",
                                        "traceback": []}]
    notebook["cells"][2]["execution_count"] = 1  # ran clean: a pass; the second check never ran
    graded = grading.grade_cells("01_demo.ipynb", notebook)
    assert [g.status for g in graded.grades] == ["pass", "fail"]
    assert "did not run" in graded.grades[1].message
    assert graded.other_errors == ["cell 3 (a cell that is not an exercise) raised KeyError: 'x'"]
    table = grading.format_table(graded.grades)
    assert "01_demo.ipynb  layers_needed  pass" in table and "2 exercises: 1 pass, 1 fail, 0 not done" in table
