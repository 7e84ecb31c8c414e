# engram — plain Makefile (no CMake). `make` builds the library and every program into build/.
#   make            library + tests + apps + tools
#   make test       build and run the doctest suite (no GPU needed)
#   make gradcheck  one line per registered op: gradcheck in f64 and the PyTorch golden match
#   make golden     regenerate tests/golden/ with Debian's python3-torch
#   make bench      training-step benchmarks against PyTorch, 1 thread and all cores
#   make demo       install deps, build, train the tiny CRSD language model (apps/crsd_tiny)
#   make data       download enwik8 and MNIST into data/ and verify their checksums (needs a network)
#   make deps       install the Debian packages (scripts/install-deps.sh)
#   make WERROR=1   warnings are errors (CI does this)
#   make CUDA=1     the same with the CUDA backend (cuda/, nvcc) into build-cuda/
#   make test-cuda  the CUDA backend against the CPU (skipped without a GPU)
#   make sanitize   the test suite built with AddressSanitizer + UBSan into build-san/, and run
#   make fuzz       libFuzzer targets (tests/fuzz/) built with clang into build-fuzz/, each run
#                   FUZZ_SECONDS (60) on a copy of its seed corpus; make fuzz-ci: 7 s each
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)

# CUDA=1: the CUDA backend (cuda/, nvcc from CUDA_HOME) into its own build directory, so a plain
# `make` and a CUDA build never mix objects. Without CUDA=1 nothing here needs nvcc.
CUDA     ?= 0
ifeq ($(CUDA),1)
BUILD    ?= build-cuda
endif
BUILD    ?= build
# OpenMP threads that spin while waiting steal the cores OpenBLAS's own threads need (runs were
# 30x slower on a busy 2-core machine); sleeping waiters cost nothing measurable here.
export OMP_WAIT_POLICY ?= PASSIVE
CXX      ?= g++
PKGS     := openblas lapacke fftw3 fftw3f fmt zlib yaml-cpp sentencepiece
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CXXFLAGS ?= -O2 -g0
CXXFLAGS += -std=c++20 -Wall -Wextra -fopenmp -I. $(PKG_CFLAGS) -MMD -MP
ifeq ($(WERROR),1)
CXXFLAGS += -Werror
endif
# SANITIZE=1: AddressSanitizer and UndefinedBehaviorSanitizer (make sanitize uses its own BUILD)
ifeq ($(SANITIZE),1)
CXXFLAGS += -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   += -fsanitize=address,undefined
endif
LDLIBS   += $(PKG_LIBS) -lcsv -fopenmp -lpthread -lm

# MPI (data-parallel training, nn/distributed.h): used when OpenMPI's pkg-config file is found
# (libopenmpi-dev), or forced with MPI=0 / MPI=1. Only nn/distributed.cpp includes <mpi.h>.
MPI ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
$(BUILD)/nn/distributed.o: CXXFLAGS += -DENGRAM_MPI=1 $(shell pkg-config --cflags ompi-c)
LDLIBS   += $(shell pkg-config --libs ompi-c)
endif
MPIRUN   ?= mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)

# The CUDA backend: cuda/*.cu compiled by nvcc as C++17 (nvcc's front end rejects fmt 9's C++20
# consteval format strings), code for Hopper (sm_90) plus PTX that newer GPUs compile at load
# time; CUDA_ARCH overrides (e.g. -arch=sm_80). Only cuda/ includes CUDA headers: core/backend.cpp
# and core/device.cpp are told by -DENGRAM_CUDA=1 that the table exists.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3
NVCCFLAGS += -std=c++17 --extended-lambda $(CUDA_ARCH) -I. $(PKG_CFLAGS) -MMD -MP -Xcompiler -Wall,-Wextra
ifeq ($(WERROR),1)
NVCCFLAGS += -Werror all-warnings -Xcompiler -Werror
endif
CUDA_SRCS := $(wildcard cuda/*.cu)
ifeq ($(CUDA),1)
CUDA_OBJS := $(CUDA_SRCS:%.cu=$(BUILD)/%.o)
$(BUILD)/core/backend.o $(BUILD)/core/device.o: CXXFLAGS += -DENGRAM_CUDA=1
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcufft -lcublas -lcudart
endif
$(BUILD)/cuda/%.o: cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# Test-only code (the op registry with its samples, the registry checks, the PyTorch golden
# reader) lives beside the ops it checks but builds into its own library, so programs that train
# link none of it.
TESTING_SRCS := autograd/registry.cpp autograd/registry_check.cpp autograd/golden.cpp \
                $(wildcard autograd/opinfo_*.cpp)
TESTING_OBJS := $(TESTING_SRCS:%.cpp=$(BUILD)/%.o)
TESTING_LIB  := $(BUILD)/libengram_testing.a
LIB_SRCS  := $(filter-out $(TESTING_SRCS),$(wildcard core/*.cpp core/cpu/*.cpp autograd/*.cpp nn/*.cpp nn/ssm/*.cpp memory/*.cpp memory/*/*.cpp))
LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/%.o) $(CUDA_OBJS)
LIB       := $(BUILD)/libengram.a

TEST_SRCS := $(wildcard tests/*.cpp)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)
TEST_BIN  := $(BUILD)/tests/engram_tests

APP_COMMON_SRCS := $(wildcard apps/common/*.cpp)
APP_COMMON_OBJS := $(APP_COMMON_SRCS:%.cpp=$(BUILD)/%.o)
APP_DIRS  := $(filter-out apps/common,$(patsubst %/main.cpp,%,$(wildcard apps/*/main.cpp)))
APP_BINS  := $(APP_DIRS:apps/%=$(BUILD)/apps/%)
TOOL_SRCS := $(wildcard tools/*.cpp)
TOOL_BINS := $(TOOL_SRCS:tools/%.cpp=$(BUILD)/tools/%)

OP_NAMES  := $(BUILD)/op_names.inc

.PHONY: test-cuda test-device-placement test-mpi sanitize fuzz fuzz-build fuzz-ci fuzz-seeds all test gradcheck golden deps clean bench demo data
all: $(LIB) $(TESTING_LIB) $(TEST_BIN) $(APP_BINS) $(TOOL_BINS)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# The CPU kernels (the optimizer's fused update among them) are the hot loops: -O3 lets g++
# vectorise them (-fno-math-errno: std::sqrt need not set errno, so it can be a vector instruction).
$(BUILD)/core/cpu/%.o: CXXFLAGS += -O3 -fno-math-errno
# The files with SSE2/AVX2 clones of their loops (ENGRAM_SIMD_CLONES): no fused multiply-add
# contraction, so the AVX2 clone rounds as the SSE2 one does and a vector lane as the loop's
# scalar tail. With it a value depended on the CPU and on where it sat in its tensor: a
# data-parallel split moved it, and tests/mpi/ saw f64 crsd_tiny runs drift 1.7e-6 apart.
$(BUILD)/core/cpu/cpu_elementwise.o $(BUILD)/core/cpu/cpu_recurrent.o $(BUILD)/core/cpu/cpu_memory.o: CXXFLAGS += -ffp-contract=off

# rm first: `ar rcs` never drops a member, so an object moved to another library would linger.
$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

$(TESTING_LIB): $(TESTING_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

# Every op name recorded on the tape, scanned from the sources, so a test can insist that each
# one is exercised by the op registry (an op cannot escape its gradcheck by being forgotten).
$(OP_NAMES): $(wildcard autograd/*.cpp) Makefile
	@mkdir -p $(dir $@)
	@grep -ohE '(record1?|unary_op)\("[a-z0-9_]+"' autograd/*.cpp | sed -E 's/.*\("([a-z0-9_]+)"/"\1",/' | sort -u > $@

$(BUILD)/tests/test_registry.o: $(OP_NAMES)
$(BUILD)/tests/%.o: CXXFLAGS += -I$(BUILD)

$(TEST_BIN): $(TEST_OBJS) $(APP_COMMON_OBJS) $(TESTING_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(TEST_OBJS) $(APP_COMMON_OBJS) $(TESTING_LIB) $(LIB) -o $@ $(LDLIBS)

# build/apps/NAME is the executable, so its object cannot live in a folder of that same name.
$(BUILD)/app-objs/%/main.o: apps/%/main.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/apps/%: $(BUILD)/app-objs/%/main.o $(APP_COMMON_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(filter %.o,$^) $(LIB) -o $@ $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(TESTING_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $< $(TESTING_LIB) $(LIB) -o $@ $(LDLIBS)

# The README's example program, extracted and built exactly as written.
README_EXAMPLE := $(BUILD)/readme_example
$(BUILD)/readme_example.cpp: README.md
	@mkdir -p $(dir $@)
	awk '/example:begin/{on=1;next} /example:end/{on=0} on && !/^```/' README.md > $@
$(README_EXAMPLE): $(BUILD)/readme_example.cpp $(LIB)
	$(CXX) $(CXXFLAGS) $< $(LIB) -o $@ $(LDLIBS)

# The whole suite under ASan + UBSan (OpenMP's runtime is not instrumented: one thread, so no
# false races through it; LeakSanitizer on). Slower than make test, in its own build directory.
sanitize:
	$(MAKE) BUILD=build-san SANITIZE=1 build-san/tests/engram_tests
	ENGRAM_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  build-san/tests/engram_tests

test: $(TEST_BIN) $(README_EXAMPLE)
	$(TEST_BIN)
	@$(README_EXAMPLE) | tee $(BUILD)/readme_example.out
	@grep -qx 'w=3.00 b=0.50' $(BUILD)/readme_example.out || (echo "README example did not print w=3.00 b=0.50" && false)

# Data parallelism on 2 ranks (tests/mpi/): equality with one process, resume across rank counts.
MPI_TEST_BIN := $(BUILD)/tests/engram_mpi_tests
$(MPI_TEST_BIN): $(BUILD)/tests/mpi/test_mpi.o $(APP_COMMON_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $< $(APP_COMMON_OBJS) $(LIB) -o $@ $(LDLIBS)
ifeq ($(MPI),1)
all: $(MPI_TEST_BIN)
endif
test-mpi:
ifeq ($(MPI),1)
	$(MAKE) $(MPI_TEST_BIN) $(BUILD)/apps/crsd_tiny $(BUILD)/apps/fashion_mlp
	ENGRAM_NUM_THREADS=1 $(MPIRUN) -np 2 $(MPI_TEST_BIN)
	bash tests/mpi/check_apps.sh $(BUILD) "$(MPIRUN)"
else
	@echo "test-mpi: skipped, engram was built without MPI (install libopenmpi-dev openmpi-bin: ENGRAM_WITH_MPI=1 bash scripts/install-deps.sh)"
endif

# The CUDA backend against the CPU (tests/cuda/): every registry op in f64 and f32, every LM kind,
# training steps, transfers, the allocator, checkpoints. Without a GPU (or in a build without
# CUDA) every case is reported as skipped. test-device-placement runs the same cases with the CPU
# kernels in the cuda slot: no CUDA code is checked, only that nothing above core/ mixes devices.
CUDA_TEST_BIN := $(BUILD)/tests/engram_cuda_tests
$(CUDA_TEST_BIN): $(BUILD)/tests/cuda/test_cuda.o $(APP_COMMON_OBJS) $(TESTING_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $< $(APP_COMMON_OBJS) $(TESTING_LIB) $(LIB) -o $@ $(LDLIBS)
all: $(CUDA_TEST_BIN)
test-cuda: $(CUDA_TEST_BIN)
ifneq ($(CUDA),1)
	@echo "test-cuda: this build has no CUDA backend (make CUDA=1 test-cuda builds one into build-cuda/)"
endif
	$(CUDA_TEST_BIN)
test-device-placement: $(CUDA_TEST_BIN)
	ENGRAM_EMULATE_CUDA_WITH_CPU=1 ENGRAM_NUM_THREADS=1 $(CUDA_TEST_BIN)

gradcheck: $(BUILD)/tools/gradcheck
	$(BUILD)/tools/gradcheck

golden: $(BUILD)/tools/export_samples
	$(BUILD)/tools/export_samples > $(BUILD)/op_samples.json
	/usr/bin/python3 tests/golden/make_golden.py $(BUILD)/op_samples.json tests/golden/ops.json
	/usr/bin/python3 tests/golden/make_layer_golden.py tests/golden/layers.json
	/usr/bin/python3 tests/golden/make_memory_golden.py tests/golden/memory.json
	/usr/bin/python3 tests/golden/make_epinet_golden.py tests/golden/epinet.json
	/usr/bin/python3 tests/golden/make_optim_golden.py
	/usr/bin/python3 tests/golden/make_ssm_mamba_golden.py tests/golden/ssm_mamba.json
	/usr/bin/python3 tests/golden/make_ssm_linoss_s5_golden.py
	/usr/bin/python3 tests/golden/make_ssm_s4_golden.py tests/golden/ssm_s4.json
	/usr/bin/python3 tests/golden/make_ssm_retnet_golden.py
	/usr/bin/python3 tests/golden/make_ssm_samba_golden.py tests/golden/ssm_samba.json

# Training-step benchmarks against PyTorch (apps/bench, docs/benchmarks.md): the sgemm peak, then
# every workload with 1 thread and with all cores. Not a test: the numbers depend on the machine.
bench: $(BUILD)/apps/bench
	$(BUILD)/apps/bench --peak
	$(BUILD)/apps/bench --threads 1
	$(BUILD)/apps/bench --threads $(shell nproc 2>/dev/null || echo 1)

deps:
	bash scripts/install-deps.sh

# The tiny CRSD language model on Debian's fortunes, end to end (apps/crsd_tiny/README.md).
# Passive OpenMP waiting: spinning threads crawl on a machine busier than its cores.
demo:
	bash scripts/install-deps.sh
	$(MAKE) $(BUILD)/apps/crsd_tiny
	OMP_WAIT_POLICY=passive $(BUILD)/apps/crsd_tiny

# enwik8 for users with a network (never needed offline): then --data data/enwik8.
data:
	bash apps/common/fetch_enwik8.sh data
	bash apps/common/fetch_mnist.sh data/mnist

# ---------------------------------------------------------------- fuzzing (docs/hardening.md)
# One libFuzzer target per reader of outside bytes, tests/fuzz/fuzz_NAME.cpp. They are built with
# clang (libFuzzer is clang's), so the library sources they need are compiled again with clang into
# their own directory: instrumented for coverage (fuzzer-no-link) and for ASan + UBSan, so that a
# bad read anywhere under a reader is caught, not only in the reader itself. Only core, autograd,
# nn and the readers are built: the fuzzers need nothing above them. autograd/nn_ops.cpp is left
# out: Debian 12's clang 14 cannot compile it (lambdas capturing structured bindings, C++20 that
# clang has from version 16), and no reader reaches the losses it holds.
FUZZ_BUILD   ?= build-fuzz
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# -Wno-pass-failed: at -O1 clang reports each `#pragma omp simd` loop it did not vectorise.
FUZZ_CXXFLAGS := -std=c++20 -O1 -g -Wall -Wextra -Werror -Wno-pass-failed -fopenmp -I. $(PKG_CFLAGS) -MMD -MP $(FUZZ_SAN)
FUZZ_LIB_SRCS := $(filter-out $(TESTING_SRCS) autograd/nn_ops.cpp,$(wildcard core/*.cpp core/cpu/*.cpp autograd/*.cpp nn/*.cpp)) \
                 apps/common/idx.cpp apps/common/config.cpp apps/common/tokenizer.cpp \
                 apps/common/psifr_csv.cpp apps/common/text_data.cpp memory/cmr/semantic.cpp
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.cpp=$(FUZZ_BUILD)/%.o)
FUZZ_LIB      := $(FUZZ_BUILD)/libengram_fuzz.a
FUZZ_NAMES    := $(patsubst tests/fuzz/fuzz_%.cpp,%,$(wildcard tests/fuzz/fuzz_*.cpp))
FUZZ_BINS     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
# Each run: a timeout of 10 s per input (a slow input is a finding too), 2 GB of memory (a header
# that makes a reader allocate more is a finding), and leaks checked (libFuzzer's default with ASan).
FUZZ_RUN_FLAGS := -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1

$(FUZZ_BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CXX) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(PKG_LIBS) -lcsv -fopenmp -lpthread -lm

fuzz-build: $(FUZZ_BINS)
# (the targets' objects are kept, so a rebuild after an edit compiles only what changed)
.SECONDARY: $(FUZZ_NAMES:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.o)

# Rewrites the committed seeds with engram's own writers (tests/fuzz/make_seeds.cpp). Sanitized
# like the rest of build-fuzz/, without libFuzzer's main.
fuzz-seeds: $(FUZZ_BUILD)/tests/fuzz/make_seeds.o $(FUZZ_LIB)
	$(FUZZ_CXX) $(FUZZ_SAN) $^ -o $(FUZZ_BUILD)/make_seeds $(PKG_LIBS) -lcsv -fopenmp -lpthread -lm
	$(FUZZ_BUILD)/make_seeds

# The committed seeds are copied first: libFuzzer writes the inputs it finds into the corpus
# directory it is given, and those belong to this run, not to the repository. A crash stops make
# with the input saved as build-fuzz/artifacts/NAME-crash-<sha1> (replay: build-fuzz/fuzz_NAME FILE).
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@set -e; for t in $(FUZZ_NAMES); do \
	  rm -rf $(FUZZ_BUILD)/corpus/$$t; mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  cp tests/fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ENGRAM_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	    $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_RUN_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $(FUZZ_BUILD)/corpus/$$t \
	    > $(FUZZ_BUILD)/fuzz_$$t.log 2>&1 || { tail -40 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units' $(FUZZ_BUILD)/fuzz_$$t.log | sed "s/^/  $$t /"; \
	done

# CI's bounded pass: every target 7 s, under a minute in all (plus the build).
fuzz-ci:
	$(MAKE) fuzz FUZZ_SECONDS=7

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(TESTING_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(APP_COMMON_OBJS:.o=.d) $(APP_DIRS:apps/%=$(BUILD)/app-objs/%/main.d) $(TOOL_SRCS:tools/%.cpp=$(BUILD)/tools/%.d) $(BUILD)/tests/mpi/test_mpi.d $(BUILD)/tests/cuda/test_cuda.d $(CUDA_OBJS:.o=.d)
-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_NAMES:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.d)
