# vmgmt. `make demo` and `make test` set up everything they need (apt, npm ci) and build what is stale.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NATIVE := device-backend/native/build/Release/vmgmt_native.node
DRIVER := guest-driver/build/vmgmt-guest
CALC_EXEC := device-backend/calc-exec/build/vmgmt-calc-exec
IMAGE  := images/build/initramfs.cpio.gz
TS_STAMP := dist/.stamp
TS_SOURCES := $(shell find orchestrator device-backend test bench -name '*.ts' -not -path '*/node_modules/*' 2>/dev/null) tsconfig.json

.PHONY: setup build native ts driver image calc-exec layout demo test test-unit test-integration bench bench-chat bench-chat-cluster bench-cpu-model bench-calc bench-scheduling bench-idle bench-agent-update bench-density bench-exec bench-observe fuzz clean

setup:
	@bash scripts/setup.sh

$(NATIVE): device-backend/native/vmgmt_native.c device-backend/native/binding.gyp
	node scripts/build-native.mjs

native: $(NATIVE)

# What starts a declared calculation program: joins the job's cgroup, drops to the configured user, execs.
$(CALC_EXEC): device-backend/calc-exec/vmgmt-calc-exec.c
	@mkdir -p $(dir $@)
	gcc -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<

calc-exec: $(CALC_EXEC)

$(TS_STAMP): $(TS_SOURCES)
	npx tsc -p tsconfig.json
	@touch $@

ts: $(TS_STAMP)

# The C header is generated from the TypeScript wire layout and committed; a unit test keeps them equal.
layout: $(TS_STAMP)
	node dist/device-backend/layout/generate-c-header-cli.js guest-driver/include/vmgmt_layout.h

driver:
	$(MAKE) -C guest-driver

image: driver
	bash images/build-image.sh

build: setup
	$(MAKE) native ts driver image calc-exec

demo: build
	node dist/orchestrator/demo/demo-cli.js

test: build
	npx tsc -p tsconfig.check.json
	$(MAKE) -s -C guest-driver test
	npx vitest run --project unit
	npx vitest run --project integration

test-unit: build
	npx vitest run --project unit

test-integration: build
	npx vitest run --project integration

bench: build
	node dist/bench/file-transfer.js

# Density: 8, 16 and 32 VMs at once through one daemon, 3 runs (about 15 min). Flags through
# DENSITY_ARGS, e.g. make bench-density DENSITY_ARGS='--runs 1 --sizes 4'.
bench-density: build
	node dist/bench/density.js $(DENSITY_ARGS)

# The long fuzz run of the core and the decoders (a bounded one is part of test-unit). VMGMT_FUZZ_OPS
# operations (default 1000000), VMGMT_FUZZ_SEED to vary or replay, VMGMT_FUZZ_PATH to replay one failure.
fuzz: setup
	$(MAKE) native ts
	node dist/device-backend/fuzz/fuzz-cli.js

# Host calculation vs the guest itself (128 MiB file, 1 GiB from a generator), then the agent's disruption
# window during a driver update (issue 12's two tables; about 8 min).
bench-calc: build
	node dist/bench/calc.js
	node dist/bench/agent-update.js

bench-cpu-model: build
	node dist/bench/cpu-model.js

bench-chat: build
	node dist/bench/chat.js

bench-chat-cluster: build
	node dist/bench/chat.js --cluster

bench-scheduling: build
	node dist/bench/scheduling.js

# The guest agent's disruption window: driver update in place vs a plain restart, one TCG guest (about 2 min).
bench-agent-update: build
	node dist/bench/agent-update.js

# Idle host CPU of one guest (no agent, polling agent, agent on MSI-X with its relay) and ping wait=poll vs relay.
bench-idle: build
	node dist/bench/idle.js

# What looking costs: a /metrics scrape vs the JSON answers, event publishing vs serialising (no guests).
bench-observe: build
	node dist/bench/observe.js

clean:
	rm -rf dist device-backend/native/build guest-driver/build images/build/initramfs* 

# vm exec against qemu-ga's guest-exec in the same TCG guest (builds a bench image with qemu-ga first;
# VMGMT_BENCH_REPS, VMGMT_BENCH_OUT_MIB, VMGMT_BENCH_BIG_MIB).
bench-exec: build
	node dist/bench/exec.js
