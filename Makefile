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
# Extra arguments for `make run`, e.g. make run ARGS="env=acrobot method.total_steps=20000"
ARGS   ?=
# llama.cpp's own server (llm=local), built once from the llama.cpp source that the llama-cpp-python
# 0.3.36 sdist vendors (llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f), sha256-checked.
# A native (-march=native) build segfaults on the first completion on the project machines; this
# portable AVX2 build works.
LLAMA_VERSION    ?= 0.3.36
LLAMA_SHA256     ?= 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
LLAMA            := $(VENV)/.llama-server-$(LLAMA_VERSION)
LLAMA_BUILD      := $(VENV)/llama-build
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
	-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF

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
	LITELLM_LOCAL_MODEL_COST_MAP=True $(PY) -c "import llmrl, baselines, promptpo, ultra, hydra_plugins.llmrl_sweeps.slurm_launcher, simglucose, metaworld, ale_py, gymnasium_robotics, litellm, rliable.library, libsumo"
	touch $(STAMP)

$(LLAMA): | $(STAMP)
	# llama-server, built once (about 5 minutes on 2 cores) into $(VENV)/bin
	rm -rf $(LLAMA_BUILD) && mkdir -p $(LLAMA_BUILD)
	$(PY) -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$(LLAMA_VERSION)" -d $(LLAMA_BUILD)
	echo "$(LLAMA_SHA256)  $(LLAMA_BUILD)/llama_cpp_python-$(LLAMA_VERSION).tar.gz" | sha256sum -c --quiet
	tar xzf $(LLAMA_BUILD)/llama_cpp_python-$(LLAMA_VERSION).tar.gz -C $(LLAMA_BUILD)
	cmake -S $(LLAMA_BUILD)/llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp -B $(LLAMA_BUILD)/build $(LLAMA_CMAKE_ARGS) >/dev/null
	cmake --build $(LLAMA_BUILD)/build --target llama-server -j$$(nproc) >/dev/null
	install -m 755 $(LLAMA_BUILD)/build/bin/llama-server $(VENV)/bin/llama-server
	rm -rf $(LLAMA_BUILD)
	$(VENV)/bin/llama-server --version
	touch $(LLAMA)

# The default local model (1.1 GB): fetched with pip once, assembled and sha256-verified into
# ~/.cache/llmrl/models (or $$LLMRL_CACHE_DIR/models); a verified copy is not fetched again.
model: $(STAMP)
	$(PY) -m llmrl.llm.model_store conf/llm/local.yaml

# The main job: PromptPO written by the embedded model against PPO on CartPole (conf/experiment/quickstart.yaml),
# then its report (results/quickstart/REPORT.md + figures) and the headline. Running it again continues or
# reports the finished runs. One single run instead: python run.py [overrides]
run: setup
	$(PY) run.py -m experiment=quickstart $(ARGS)
	$(PY) scripts/report.py runs/quickstart --out results/quickstart --log-x --title "Quickstart: PromptPO (embedded model) vs PPO on CartPole"
	$(PY) scripts/headline.py runs/quickstart --target 195 --report results/quickstart

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/runner_overhead.py
	$(PY) benchmarks/llm_concurrency.py
	$(PY) benchmarks/sandbox_throughput.py
	$(PY) benchmarks/promptpo_round.py
	$(PY) benchmarks/ultra_matching.py
	$(PY) benchmarks/realworld_env_speed.py

# A preset of conf/experiment/ as a multirun, e.g.  make sweep EXP=smoke
#   make sweep EXP=ultra_mujoco ARGS="hydra/launcher=slurm hydra.launcher.partition=cpu llm=gemini"
# Launching it again continues it: finished runs are skipped, unfinished ones resume.
EXP ?= smoke
sweep: setup
	$(PY) run.py -m experiment=$(EXP) $(ARGS)

# Regenerate results/<sweep name>/REPORT.md (tables, figures, statistics) from a sweep directory:
#   make report SWEEP=runs/<experiment_name> [OUT=results/somewhere]
# It also rewrites results/BASELINES.md (PPO/SAC against rl-baselines3-zoo): from runs/baselines_zoo when that sweep
# is here (new finished runs are evaluated the zoo's way and archived), else from results/baselines_zoo/archive.
SWEEP ?= runs/report_sweep
BASELINES ?= $(wildcard runs/baselines_zoo)
report: setup
	@if [ -d "$(SWEEP)" ]; then \
		$(PY) scripts/report.py $(SWEEP) $(if $(OUT),--out $(OUT),) --title "$(or $(TITLE),Results)" $(if $(NOTES),--notes-file $(NOTES),); \
	else echo "no $(SWEEP) here: no REPORT.md for it (make report SWEEP=runs/<experiment_name>)"; fi
	$(PY) scripts/baselines_table.py $(BASELINES)

clean:
	rm -rf $(VENV) runs multirun outputs .pytest_cache
