# Lumina: the two commands a newcomer types are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := run
IN_ENV := source ./env.sh &&

.PHONY: setup run test bench clean

setup:
	@./scripts/setup.sh

# make run records the night (every topic) into log/nights/<date-time>/, or where ARGS="record:=DIR" says
# (record:= with no value: no recording), and ends by drawing it (lumina plot: DIR/plots/*.png). Its exit status
# is the launch's.
run: setup
	@$(IN_ENV) { \
	  night="log/nights/$$(date +%Y%m%d-%H%M%S)"; own_record="record:=$$night"; \
	  for arg in $(ARGS); do case "$$arg" in record:=*) night="$${arg#record:=}"; own_record="";; esac; done; \
	  ROS_LOG_DIR=$(CURDIR)/log lumina_launch lumina_nodes city.launch.xml use_sim_time:=true $$own_record $(ARGS); \
	  status=$$?; \
	  if [ -n "$$night" ] && [ -e "$$night" ]; then \
	    echo "=== The night's pictures (lumina plot $$night) ==="; \
	    lumina plot "$$night" || echo "make run: lumina plot $$night failed (exit status: the launch's, $$status)" >&2; \
	  fi; \
	  exit $$status; \
	}

test: setup
	@$(IN_ENV) python -m pytest $(PYTEST_ARGS)

# The benches' optional extras (YASA for bench/biodream_staging.py, about 740 MB) go into the venv here only:
# make run and make test never need them.
bench: setup
	@$(IN_ENV) python -m pip install --quiet --disable-pip-version-check --no-input -r requirements-bench.txt
	@$(IN_ENV) for b in bench/*.py; do echo "== $$b"; python "$$b" --quick || exit 1; done

clean:
	rm -rf build install log .venv .pytest_cache
