# cipc -- the two commands that matter: `make run` and `make test`.
# Everything else wraps CMake (build/), the sanitizer build (build-asan/) and the
# libFuzzer build (build-fuzz/).

MAKEFLAGS  += --no-print-directory
BUILD      ?= build
JOBS       ?= $(shell nproc)
CTEST_JOBS ?= 2
FUZZ_SECONDS ?= 600

.PHONY: all build run tour test unit asan bench fuzz install clean bootstrap

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The main job: the hub, in the foreground until Ctrl-C (SIGINT) or SIGTERM. HTTP, WebSocket,
# SSE and the dashboard on http://127.0.0.1:7380/, RESP on 127.0.0.1:7379 (docs/hub.md).
# Extra flags: make run ARGS='--http-port 8080 --token secret'.
run: build
	@$(BUILD)/bin/cipc serve $(ARGS)

# A short tour: each example runs against a local server and says what it shows.
tour: build
	@scripts/tour $(BUILD)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(CTEST_JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: bootstrap
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCIPC_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(CTEST_JOBS)

bench:
	@scripts/bootstrap bench
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@scripts/bench $(BUILD)

fuzz:
	@scripts/bootstrap fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCIPC_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzzers
	@scripts/fuzz build-fuzz $(FUZZ_SECONDS)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
