# Every target CI and the README use. A fresh clone needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LISTEN ?= 127.0.0.1:6600
DATA_DIR ?= .run/robot

.PHONY: venv run demo test lint bench proto clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: a robot on $(LISTEN) with the example templates, cloned from git
run: venv
	$(BIN)/python tools/example_repo.py .run/examples/templates
	$(BIN)/zrobot server start --listen $(LISTEN) --data-dir $(DATA_DIR) \
		--template-repo .run/examples/templates

## demo: two robots, a consumer on one calling producers on the other
demo: venv
	$(BIN)/python examples/demo.py

## test: the whole suite, under gevent as in production
test: venv
	$(BIN)/python -m gevent.monkey --module pytest -q $(ARGS)

lint: venv
	$(BIN)/ruff check zrobot tests tools bench examples
	$(BIN)/ruff format --check zrobot tests tools bench examples
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/bench.py

proto: venv
	$(BIN)/python tools/protogen.py

clean:
	rm -rf $(VENV) .run
