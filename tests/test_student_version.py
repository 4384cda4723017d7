"""The student version of every notebook runs top to bottom in a real kernel, failing only in its check
cells, and `grade` reports every exercise "not done". (The teacher's version passing every check is what
nbval's run of the committed notebooks proves: a failing check fails its cell.)"""

from pathlib import Path

import pytest

from mistral_mini.lessons import classroom, grading

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student")
    written, skipped = classroom.write_student_copies(NOTEBOOKS, folder)
    assert len(written) == len(NAMES) and not skipped
    return folder


@pytest.mark.parametrize("name", NAMES, ids=[n[:2] for n in NAMES])
def test_student_version_runs_and_every_exercise_is_not_done(student_folder, name):
    graded = grading.grade_notebook(student_folder / name)
    assert graded.other_errors == []
    assert len(graded.grades) >= 2
    assert {g.status for g in graded.grades} == {"not done"}, grading.format_table(graded.grades)
