# The two commands a newcomer needs: `make book` and `make test`.
# Both create .venv if it is missing and install everything first
# (lstmlib[dev]: the book, grading, test and hub extras of pyproject.toml).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
BOOK_FLAGS := -W -n --keep-going --all

# One BLAS thread per process: the book's notebooks and the test workers run
# side by side, and oversubscribed BLAS threads make small matrices crawl.
OPENBLAS_NUM_THREADS ?= 1
OMP_NUM_THREADS ?= 1
MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS OMP_NUM_THREADS MKL_NUM_THREADS

.PHONY: book catalogs lint test test-fast setup system-deps serve clean

# pytest on both cores, test by test; a module whose fixtures are costly
# (browser, server, database, class of submissions) names its xdist_group
# and runs in one worker
PYTEST := $(PY) -m pytest -n 2 --dist loadgroup

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

# Both editions: English in _build/html, Persian in _build/html/fa (its
# translations in locale/fa; it reuses the notebooks the English build
# executed, .jupyter_cache). Pages that read the benchmark recordings run
# again after a new recording.
book: $(STAMP)
	$(PY) scripts/refresh_recorded_pages.py
	$(VENV)/bin/jupyter-book build . $(BOOK_FLAGS)
	$(PY) scripts/build_book_fa.py
	@echo "The book is at $(CURDIR)/_build/html/index.html"
	@echo "The Persian edition is at $(CURDIR)/_build/html/fa/index.html"

# After a change to the English text: the message templates of every page
# (_build/gettext), merged into the Persian catalogs (locale/fa/LC_MESSAGES);
# new messages come in untranslated, changed ones fuzzy (CONTRIBUTING.md).
catalogs: $(STAMP)
	$(PY) scripts/build_book_fa.py --gettext
	$(VENV)/bin/sphinx-intl update -p _build/gettext -l fa -d locale

# ruff, configured in pyproject.toml ([tool.ruff])
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) system-deps lint book
	$(PYTEST)

# Day-to-day: everything but the slow tests (book build, nbgrader pipeline,
# benchmark runs, browser, the CUDA simulator at length); no book build, no
# lint first (make lint).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

clean:
	rm -rf _build .pytest_cache

# Serve the built book on http://127.0.0.1:8000/ (PORT=... to change it);
# builds it first if there is no build yet.
serve: $(STAMP)
	test -f _build/html/index.html || $(MAKE) book
	$(PY) scripts/serve.py --port $(or $(PORT),8000)

# --- Grading (instructor; see book/instructor_guide.md) -----------------------
# make grade-01_rnn_forward : collect, autograde (sandboxed), feedback
# make autograde-01_rnn_forward, make feedback-01_rnn_forward
# make grades               : export every grade to grading/grades.csv
# make sandbox-check        : can this machine build the grading sandbox?
GRADE := $(PY) -m lstmlib.grading

.PHONY: sandbox-check grades

sandbox-check: $(STAMP)
	$(GRADE) sandbox-check

collect-%: $(STAMP)
	$(GRADE) collect $*

autograde-%: $(STAMP)
	$(GRADE) autograde $*

feedback-%: $(STAMP)
	$(GRADE) feedback $*

grade-%: $(STAMP)
	$(GRADE) collect $*
	$(GRADE) autograde $*
	$(GRADE) feedback $*

grades: $(STAMP)
	$(GRADE) export grading/grades.csv

# --- The course on a JupyterHub (book/instructor_guide.md) --------------------
# make hub : JupyterHub on http://127.0.0.1:8010/ (PORT=... to change it) for
# this course folder: the instructor's formgrader, the students' assignment
# list, the course's exchange and gradebook. It prints the address and the
# demo log-ins; Ctrl-C stops it and every server it started.
.PHONY: hub

hub: $(STAMP)
	bash scripts/hub-deps.sh
	$(PY) hub/launch.py --port $(or $(PORT),8010)
