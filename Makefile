# Two commands for a newcomer: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
HOME_DIR ?= shopsense_home
PORT ?= 8000

.PHONY: demo test test-all bench lint clean docs

$(BIN)/activate:
	$(PY) -m venv $(VENV)

# torch first, pinned: the CPU build on this disk; a bare `torch` would pull CUDA.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/shopsense demo --home $(HOME_DIR) --port $(PORT)

test: $(VENV)/.installed
	sh scripts/install-browser.sh
	sh scripts/install-services.sh
	$(BIN)/pytest -q

test-all: $(VENV)/.installed
	sh scripts/install-browser.sh
	sh scripts/install-services.sh
	$(BIN)/pytest -q -m "slow or not slow"

# the documentation site and course, built offline into site/ (any warning fails the build);
# preview with $(BIN)/mkdocs serve
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) $(HOME_DIR) .pytest_cache site
