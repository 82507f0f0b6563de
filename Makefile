# depthprune: one Makefile.
#
#   make            build ./depthprune
#   make test       build and run every test (last line: "N passed, N failed")
#   make asan       tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan       tests under ThreadSanitizer
#   make bench      the standard benchmark set (bench/run.sh)
#   make fuzz       libFuzzer target for the GGUF reader (clang)
#
# SIMD kernels live in their own files, compiled with their own -m flags and
# picked at run time (src/kernels.c); everything else is plain C11.

CC      ?= cc
OPT     ?= -O2
WARN     = -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wformat=2 -Werror
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -Iinclude -Isrc -MMD -MP
LDLIBS  += -lm -lpthread
BUILD   ?= build

# LAPACKE over OpenBLAS (Debian: liblapacke-dev libopenblas-dev; tools/setup.sh
# installs them) for the closed-form lowrank:R recovery. Without them the rest
# builds and lowrank:R with R > 0 fails with a message saying what to install.
LAPACKE_OK := $(shell printf '\043include <lapacke.h>\n\043include <cblas.h>\nint main(void){return 0;}\n' | \
                $(CC) -x c - -o /dev/null -llapacke -lopenblas 2>/dev/null && echo yes)
ifeq ($(LAPACKE_OK),yes)
override LDLIBS += -llapacke -lopenblas
else
CFLAGS  += -DDP_NO_LAPACKE
$(warning LAPACKE/OpenBLAS not found: building without closed-form lowrank:R recovery; run tools/setup.sh (apt-get install liblapacke-dev libopenblas-dev))
endif

SIMD_AVX2   = -mavx2 -mfma -mf16c
SIMD_AVX512 = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
              -mavx512vnni -mavx512bf16

LIB_SRC  = $(filter-out src/kernels_avx2.c src/kernels_avx512.c,$(wildcard src/*.c))
SIMD_SRC = src/kernels_avx2.c src/kernels_avx512.c
CLI_SRC  = $(wildcard src/cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(foreach f,$(SIMD_SRC),$(if $(wildcard $(f)),$(BUILD)/$(f:.c=.o)))
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test asan tsan bench fuzz clean

all: depthprune

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

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/harness.h $(BUILD)/libdepthprune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdepthprune.a $(LDLIBS)

test: depthprune $(TESTS)
	@sh tests/run.sh $(BUILD) $(TESTS)

# The sanitizer builds link ./depthprune too (the CLI tests run it); it is removed afterwards so
# that the next plain `make` links the normal binary again.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDLIBS="-lm -lpthread -fsanitize=address,undefined" test; rc=$$?; rm -f depthprune; exit $$rc

tsan:
	$(MAKE) BUILD=build-tsan OPT="-O1 -fsanitize=thread" LDLIBS="-lm -lpthread -fsanitize=thread" test; \
	    rc=$$?; rm -f depthprune; exit $$rc

bench: depthprune
	@sh bench/run.sh

fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT="-O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
	    $(BUILD:build=build-fuzz)/libdepthprune.a
	clang -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o build-fuzz/fuzz_gguf tests/fuzz/fuzz_gguf.c build-fuzz/libdepthprune.a -lm -lpthread
	@mkdir -p build-fuzz/corpus
	@echo "run: build-fuzz/fuzz_gguf -max_total_time=60 build-fuzz/corpus tests/fuzz/corpus"

clean:
	rm -rf build build-asan build-tsan build-fuzz depthprune

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmark programs: make build/bench/bench_kernels
$(BUILD)/bench/%: bench/%.c $(BUILD)/libdepthprune.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdepthprune.a $(LDLIBS)
