# Lumina: the two commands a newcomer types are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := run
IN_ENV := source ./env.sh &&

.PHONY: setup run test bench clean

setup:
	@./scripts/setup.sh

run: setup
	@$(IN_ENV) ROS_LOG_DIR=$(CURDIR)/log lumina_launch lumina_nodes city.launch.xml use_sim_time:=true $(ARGS)

test: setup
	@$(IN_ENV) python -m pytest $(PYTEST_ARGS)

# The benches' optional extras (YASA for bench/biodream_staging.py, about 740 MB) go into the venv here only:
# make run and make test never need them.
bench: setup
	@$(IN_ENV) python -m pip install --quiet --disable-pip-version-check --no-input -r requirements-bench.txt
	@$(IN_ENV) for b in bench/*.py; do echo "== $$b"; python "$$b" --quick || exit 1; done

clean:
	rm -rf build install log .venv .pytest_cache
