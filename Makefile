# Two commands a new user needs:  `make run`  (set up + main job)  and  `make test`.
# Everything Python goes into a virtual environment ($(VENV)); no root needed for that part.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extra arguments for `make run`, e.g. make run ARGS="env=acrobot method.total_steps=20000"
ARGS   ?=

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch first, so nothing later pulls the CUDA wheels.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	# simglucose pins gymnasium 0.29 (conflicts with Meta-World); its simulator core
	# needs no gymnasium, and its __init__ imports gym's registry, hence gym --no-deps.
	$(PY) -m pip install --quiet --no-deps "simglucose==0.2.11" "gym==0.26.2"
	$(PY) -c "import llmrl, baselines, simglucose, metaworld, ale_py, gymnasium_robotics"
	touch $(STAMP)

run: setup
	$(PY) run.py $(ARGS)

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/runner_overhead.py

clean:
	rm -rf $(VENV) runs multirun outputs .pytest_cache
