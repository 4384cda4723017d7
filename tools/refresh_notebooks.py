"""Re-run notebooks top to bottom and save them tidy, ready to commit.

    .venv/bin/python tools/refresh_notebooks.py [notebooks/NN_name.ipynb ...]   (default: all of them)

Committed notebooks carry their outputs (GitHub shows the figures, nbval compares them), so after editing a
notebook, or code whose output it shows, run this and commit the result. Tidying removes what would
change on every run or only means something in a live kernel: per-cell timing metadata, the state and
outputs of live widgets (each widget's figure is also drawn by a plain cell before it), and the exact
Python version. It also writes the nbgrader metadata of the exercise cells (``exercise_cells``).
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from mistral_mini.lessons.exercise_cells import tag_exercise_cells

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KEPT_LANGUAGE_INFO = ("name", "file_extension", "mimetype", "pygments_lexer", "codemirror_mode",
                      "nbconvert_exporter")


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    # Run from the notebooks folder, as JupyterLab and nbval do; keep widget state so that Output widgets work.
    NotebookClient(notebook, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def tidy(notebook: nbformat.NotebookNode) -> None:
    tag_exercise_cells(notebook)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
        if any(WIDGET_VIEW in output.get("data", {}) for output in cell.get("outputs", [])):
            cell.outputs = []
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    info = notebook.metadata.get("language_info", {})
    notebook.metadata["language_info"] = {k: v for k, v in info.items() if k in KEPT_LANGUAGE_INFO}


def main(paths: list[str]) -> None:
    for path in [Path(p) for p in paths] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        start = time.perf_counter()
        notebook = execute(path)
        tidy(notebook)
        nbformat.write(notebook, path)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
