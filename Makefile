# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STVIZ := $(VENV)/bin/stviz
STAMP := $(VENV)/.stviz-installed
DATA ?= .stviz-data

.PHONY: install demo test lint model bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(STVIZ) info examples/synth_clip.mp4

test: $(STAMP)
	$(PY) -m ruff check stviz tests benchmarks
	$(PY) -m pytest -n 2 --durations=10

lint: $(STAMP)
	$(PY) -m ruff check stviz tests benchmarks

clean:
	rm -rf $(VENV) $(DATA) stviz-out .pytest_cache .ruff_cache
