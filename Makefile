# Lumina: the two commands a newcomer types are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := run
IN_ENV := source ./env.sh &&

.PHONY: setup run test bench clean

setup:
	@./scripts/setup.sh

# make run: the city in simulation, the festival night (scripts/run_city.sh says what it shows and keeps). It
# records the night into log/nights/<date-time>/ (ARGS="record:=DIR" records into DIR; record:= records nothing)
# and ends by drawing it (lumina plot). Its exit status is the launch's.
run: setup
	@$(IN_ENV) ./scripts/run_city.sh $(ARGS)

test: setup
	@$(IN_ENV) python -m pytest $(PYTEST_ARGS)

# The benches' optional extras (YASA for bench/biodream_staging.py, about 740 MB) go into the venv here only:
# make run and make test never need them.
bench: setup
	@$(IN_ENV) python -m pip install --quiet --disable-pip-version-check --no-input -r requirements-bench.txt
	@$(IN_ENV) for b in bench/*.py; do echo "== $$b"; python "$$b" --quick || exit 1; done

clean:
	rm -rf build install log .venv .pytest_cache
