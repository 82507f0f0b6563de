# depthprune: one Makefile.
#
#   make            build ./depthprune
#   make test       build and run every test (last line: "N passed, N failed")
#   make mutants    the mutation check: each deliberate bug of tests/mutants.txt must turn its tests red
#   make asan       tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan       tests under ThreadSanitizer
#   make bench      the standard benchmark set (bench/run.sh)
#   make fuzz       libFuzzer targets for every parser (clang): tests/fuzz/fuzz_*.c
#   make test-aarch64  cross-build for aarch64 (scalar kernels) and run a subset of the
#                   C tests under qemu-user (tools/setup-cross.sh installs the tools)
#
# SIMD kernels live in their own files, compiled with their own -m flags and
# picked at run time (src/kernels.c); they are built for x86-64 targets only
# (`$(CC) -dumpmachine`), elsewhere the scalar set is all there is. Everything
# else is plain C11.

CC      ?= cc
OPT     ?= -O2
WARN     = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wformat=2 -Werror
CFLAGS  ?=
INC      = -Iinclude -Isrc
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) $(INC) -MMD -MP
LDLIBS  += -lm -lpthread
BUILD   ?= build

# LAPACKE over OpenBLAS (Debian: liblapacke-dev libopenblas-dev; tools/setup.sh
# installs them) for the closed-form lowrank:R recovery. Without them the rest
# builds and lowrank:R with R > 0 fails with a message saying what to install.
# LAPACKE=0: build without them, without looking (the cross build does).
LAPACKE ?= auto
ifeq ($(LAPACKE),0)
LAPACKE_OK := no
else
LAPACKE_OK := $(shell printf '\043include <lapacke.h>\n\043include <cblas.h>\nint main(void){return 0;}\n' | \
                $(CC) -x c - -o /dev/null -llapacke -lopenblas 2>/dev/null && echo yes)
endif
ifeq ($(LAPACKE_OK),yes)
override LDLIBS += -llapacke -lopenblas
else
CFLAGS  += -DDP_NO_LAPACKE
ifneq ($(LAPACKE),0)
$(warning LAPACKE/OpenBLAS not found: building without closed-form lowrank:R recovery; run tools/setup.sh (apt-get install liblapacke-dev libopenblas-dev))
endif
endif

# MPI=1: also ./depthprune-mpi, the MPI build (README "Running on several machines"): the
# objects of the plain build with src/dist.c compiled against Open MPI (found through mpicc;
# Debian: openmpi-bin libopenmpi-dev, which tools/setup.sh installs). Only src/dist.c sees
# mpi.h, so ./depthprune stays the same program. `make test` runs the MPI tests
# (tests/mpi.sh) whenever mpicc and mpirun are there (MPI=0: never).
MPI ?= auto
MPICC_OK := $(if $(filter 0,$(MPI)),,$(shell command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 && \
               mpicc --showme:compile >/dev/null 2>&1 && echo yes))
ifeq ($(MPI),1)
ifneq ($(MPICC_OK),yes)
$(error MPI=1: mpicc/mpirun (Open MPI) not found; install them with: apt-get install openmpi-bin libopenmpi-dev (or run tools/setup.sh))
endif
endif
ifeq ($(MPICC_OK),yes)
MPI_CFLAGS := $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile))
MPI_LIBS   := $(shell mpicc --showme:link)
endif

SIMD_AVX2   = -mavx2 -mfma -mf16c
# (the VNNI code of kernels_avx512.c asks for its extension itself, see there)
SIMD_AVX512 = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq

# The SIMD files on x86-64 targets only; src/kernels.c gives the others no SIMD set.
SIMD_ALL = src/kernels_avx2.c src/kernels_avx512.c
LIB_SRC  = $(filter-out $(SIMD_ALL),$(wildcard src/*.c))
SIMD_SRC := $(if $(filter x86_64%,$(shell $(CC) -dumpmachine)),$(SIMD_ALL))
CLI_SRC  = $(wildcard src/cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)

# The CLI is a client of include/depthprune.h alone: its files compile without -Isrc
# (tests/cli_symbols.sh checks the objects' undefined symbols against the header).

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(foreach f,$(SIMD_SRC),$(if $(wildcard $(f)),$(BUILD)/$(f:.c=.o)))
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# Fuzz targets: built with libFuzzer by `make fuzz` (clang), and with any compiler as replay
# programs (tests/fuzz/replay.c) that `make test` runs on the seed corpora (tests/cli_fuzz.sh).
# `make test` builds the libFuzzer ones too when clang links -fsanitize=fuzzer (FUZZ=0: never),
# so tests/cli_fuzz.sh can run each for a few seconds.
FUZZ_TARGETS = gguf csv tasks plan scores tokenizer
FUZZ_REPLAY  = $(FUZZ_TARGETS:%=$(BUILD)/fuzz-replay/fuzz_%)
FUZZ ?= $(shell printf 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}\n' | \
          clang -x c - -fsanitize=fuzzer -o /dev/null 2>/dev/null && echo 1 || echo 0)

.PHONY: all test test-mpi test-aarch64 mutants asan tsan bench fuzz clean

# Tests that use the public header alone: compiled with -Iinclude only.
$(BUILD)/tests/test_api_workflow: private INC = -Iinclude

all: depthprune $(if $(filter 1,$(MPI)),depthprune-mpi)

# The MPI build: the library's objects but src/dist.o, and dist.c compiled with DP_MPI.
depthprune-mpi: $(CLI_OBJ) $(filter-out $(BUILD)/src/dist.o,$(LIB_OBJ)) $(BUILD)/mpi/dist.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

$(BUILD)/mpi/dist.o: src/dist.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DDP_MPI $(MPI_CFLAGS) -c -o $@ $<

depthprune: $(CLI_OBJ) $(BUILD)/libdepthprune.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libdepthprune.a $(LDLIBS)

$(BUILD)/libdepthprune.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/src/kernels_avx2.o: src/kernels_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SIMD_AVX2) -c -o $@ $<

$(BUILD)/src/kernels_avx512.o: src/kernels_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SIMD_AVX512) -c -o $@ $<

# The fuzz build compiles the SIMD kernels without sanitizers: clang 14 takes many minutes on
# their intrinsics under ASan+UBSan, and they parse nothing (make asan covers them).
ifeq ($(BUILD),build-fuzz)
$(BUILD)/src/kernels_avx2.o $(BUILD)/src/kernels_avx512.o: override OPT = -O1
endif

$(CLI_OBJ): private CFLAGS := $(filter-out -Isrc,$(CFLAGS))
# Tests of the public header alone (and docs/example.c): no internal header either.
$(BUILD)/tests/test_api: private CFLAGS := $(filter-out -Isrc,$(CFLAGS))
$(BUILD)/docs/example: private CFLAGS := $(filter-out -Isrc,$(CFLAGS))
$(BUILD)/docs/example: docs/example.c include/depthprune.h $(BUILD)/libdepthprune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdepthprune.a $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/harness.h $(BUILD)/libdepthprune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdepthprune.a $(LDLIBS)

$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz_util.h $(BUILD)/libdepthprune.a
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -o $@ tests/fuzz/replay.c $< $(BUILD)/libdepthprune.a $(LDLIBS)

test: depthprune $(TESTS) $(BUILD)/docs/example $(FUZZ_REPLAY) $(if $(filter 1,$(FUZZ)),fuzz) $(if $(filter yes,$(MPICC_OK)),depthprune-mpi)
	@FUZZ=$(FUZZ) MPI_TESTS=$(if $(filter yes,$(MPICC_OK)),1,0) sh tests/run.sh $(BUILD) $(TESTS)

# The MPI tests alone (tests/mpi.sh: every command's JSON under mpirun -np 2 and 3 against one process).
test-mpi: depthprune depthprune-mpi
	@sh tests/mpi.sh

# aarch64: a cross build in build-aarch64 (the scalar set alone, no LAPACKE) whose CLI links
# and whose C tests of AARCH64_TESTS run under qemu-user: the subset that takes about three
# minutes there and does not run ./depthprune (the host's binary). test_recover and
# test_recover_linear, many minutes under emulation, count their LAPACKE checks as skips in
# any build without it (make LAPACKE=0). tools/setup-cross.sh installs the compiler and qemu
# when missing. gcc 12's aarch64 vectorizer stops with an internal error on some tests
# (vect_transform_reduction), hence -fno-tree-vectorize.
AARCH64_CC    = aarch64-linux-gnu-gcc
AARCH64_RUN   = qemu-aarch64 -L /usr/aarch64-linux-gnu
AARCH64_TESTS = test_base test_rng test_json test_unicode test_gguf test_memory test_model test_data \
                test_tokenizer test_api_workflow test_actq8 test_api test_kernels test_quants
AARCH64_BIN   = $(AARCH64_TESTS:%=build-aarch64/tests/%)
test-aarch64:
	@sh tools/setup-cross.sh
	@$(MAKE) -s BUILD=build-aarch64 CC=$(AARCH64_CC) LAPACKE=0 FUZZ=0 OPT="-O2 -fno-tree-vectorize" \
	    build-aarch64/depthprune $(AARCH64_BIN)
	@RUNNER="$(AARCH64_RUN)" CLI=0 sh tests/run.sh build-aarch64 $(AARCH64_BIN)

$(BUILD)/depthprune: $(CLI_OBJ) $(BUILD)/libdepthprune.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libdepthprune.a $(LDLIBS)

# Mutants run in a scratch copy of the tree and of $(BUILD) (tools/mutants.sh); MUTANTS="3 7" runs only those.
mutants: depthprune $(TESTS)
	@sh tools/mutants.sh $(BUILD) $(MUTANTS)

# The sanitizer builds link ./depthprune too (the CLI tests run it); it is removed afterwards so
# that the next plain `make` links the normal binary again. They leave the MPI build out (MPI=0:
# Open MPI's own allocations are not this project's to sanitize).
asan:
	$(MAKE) BUILD=build-asan FUZZ=0 MPI=0 OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDLIBS="-lm -lpthread -fsanitize=address,undefined" test; rc=$$?; rm -f depthprune; exit $$rc

tsan:
	$(MAKE) BUILD=build-tsan FUZZ=0 MPI=0 OPT="-O1 -fsanitize=thread" LDLIBS="-lm -lpthread -fsanitize=thread" test; \
	    rc=$$?; rm -f depthprune; exit $$rc

bench: depthprune
	@sh bench/run.sh

fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz FUZZ=0 OPT="-O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
	    build-fuzz/libdepthprune.a
	@for t in $(FUZZ_TARGETS); do \
	    [ build-fuzz/fuzz_$$t -nt tests/fuzz/fuzz_$$t.c ] && [ build-fuzz/fuzz_$$t -nt build-fuzz/libdepthprune.a ] && \
	        [ build-fuzz/fuzz_$$t -nt tests/fuzz/fuzz_util.h ] && continue; \
	    echo "clang ... -o build-fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c"; \
	    clang -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	        -o build-fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c build-fuzz/libdepthprune.a $(LDLIBS) || exit 1; \
	done
	@echo "run: mkdir -p build-fuzz/corpus-csv; build-fuzz/fuzz_csv -max_total_time=60 build-fuzz/corpus-csv tests/fuzz/csv"
	@echo "     (targets: $(FUZZ_TARGETS); the GGUF seeds are in tests/fuzz/corpus)"

clean:
	rm -rf build build-asan build-tsan build-fuzz build-aarch64 depthprune depthprune-mpi

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmark programs: make build/bench/bench_kernels
$(BUILD)/bench/%: bench/%.c $(BUILD)/libdepthprune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdepthprune.a $(LDLIBS)
