# Two commands on a fresh clone:
#   make lab    open the notebook series in JupyterLab
#   make test   run every test: unit tests, ruff, and each notebook under nbval
#   make test-browser   the widgets in a real JupyterLab in headless Chromium (needs Debian's chromium package)
# Each first creates or updates .venv from requirements.txt.
# For teachers: make student   writes student/, the notebooks with every solution stubbed (see README)

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: lab test test-browser notebooks student venv clean

venv: $(STAMP)

# Rebuilt whenever requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# JupyterLab refuses to run as root unless told to (containers often run as root).
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

test: $(STAMP)
	$(VENV)/bin/ruff check mistral_mini tests benchmarks tools
	$(VENV)/bin/python -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg

# Each notebook with a widget, run in JupyterLab in headless Chromium; every slider must redraw its figure.
# Uses /usr/bin/chromium (apt-get install chromium), or CHROMIUM=/path/to/chromium.
test-browser: $(STAMP)
	$(VENV)/bin/python -m pytest -s tests/browser/widgets_in_lab.py

# After changing a notebook (or code whose output it shows): re-run every notebook and save it tidy.
notebooks: $(STAMP)
	$(VENV)/bin/python tools/refresh_notebooks.py

# The student version, for teachers: never overwrites a notebook already in student/ (it may hold a student's work).
student: $(STAMP)
	$(VENV)/bin/python -m mistral_mini.lessons.classroom student notebooks/ student/

clean:
	rm -rf $(VENV)
