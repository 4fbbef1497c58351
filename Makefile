# The two commands of the README and the docs: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
AXE    := tests/web/vendor/node_modules/axe-core/axe.min.js

.PHONY: run test system-deps bench fuzz lint clean translations translations-compile

run: $(STAMP)
	$(BIN)/omnirouter serve

test: $(STAMP) system-deps $(AXE)
	$(BIN)/python -m pytest -q

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "omnirouter needs $(PYTHON) (Python 3.11 or newer): install it, or run make PYTHON=python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# Debian packages the tests drive for real (headless Chromium for the browser tests).
system-deps:
	@./scripts/system-deps.sh

# axe-core, which the browser tests inject into the widget to check its accessibility (test-only:
# tests/web/vendor/package-lock.json pins it; never served by the router)
$(AXE): tests/web/vendor/package.json tests/web/vendor/package-lock.json
	@command -v npm >/dev/null || ./scripts/system-deps.sh
	npm ci --prefix tests/web/vendor --no-audit --no-fund --silent
	@touch $@

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# 100,000 hostile cases per channel parser (see docs/reliability.md)
fuzz: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/fuzz.py

# ruff (the rules of pyproject's [tool.ruff]), the formatting, mypy --strict; all three run, any failing fails
lint: $(STAMP)
	$(BIN)/pip install --quiet 'mypy>=1.10' types-PyYAML 'ruff>=0.9,<1'
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

# the console's and web chat's words (docs/translations.md): extract the strings of the code and
# templates into messages.pot and merge it into every language's messages.po; then translate
translations: $(STAMP)
	$(BIN)/python scripts/translations.py extract
	$(BIN)/python scripts/translations.py update

# a check only: the app compiles the .po files in memory at start-up (no .mo is needed)
translations-compile: $(STAMP)
	$(BIN)/python scripts/translations.py compile

clean:
	rm -rf $(VENV) var .pytest_cache build site *.egg-info bot/web/translations/*/LC_MESSAGES/*.mo
