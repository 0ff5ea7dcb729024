# portsyncd: `make run` (a live demo) and `make test` (every test) on a fresh Debian 12 machine, as root.
SHELL := /bin/bash
SWIFT ?= swift
CONFIGURATION ?= debug
BIN := .build/$(CONFIGURATION)/portsyncd

APT_PACKAGES := libmnl-dev libhiredis-dev libsystemd-dev redis-server redis-tools pkg-config iproute2 python3 python3-pip systemd
# Tests only (not for `make install`): headless Chromium for the dashboard test, promtool for the metrics lint,
# supervisord for the swss container test.
TEST_APT_PACKAGES := chromium prometheus supervisor
PY_PACKAGES := redis pytest prometheus-client websockets jsonschema
# Tests only: the schema-driven fuzzer of the HTTP API.
TEST_PY_PACKAGES := schemathesis
# SONiC's supervisord plugin, for the interpreter that runs Debian's supervisord (its #! line), which need not be
# the python3 on PATH.
SUPERVISOR_PY_PACKAGES := supervisord-dependent-startup
# The Python client (clients/python), installed editable: the integration tests run its portsyncd-watch command.
CLIENT := clients/python
# Seconds of fuzzing at the end of `make test` and in `make fuzz` (scripts/fuzz.sh splits them among the fuzzers).
FUZZ_SECONDS ?= 60
FUZZ_SOURCES := Fuzz/Package.swift Fuzz/FuzzSupport Fuzz/FuzzConfig Fuzz/FuzzNetlink Fuzz/FuzzDatabaseConfig

.PHONY: all deps test-deps build run run-system install test test-unit test-integration bench fuzz format lint clean

all: build

deps:
	@scripts/install-deps.sh $(APT_PACKAGES) -- $(PY_PACKAGES)

# What only the tests need: Chromium, promtool, supervisord and its plugin, and the Python client.
test-deps: deps
	@scripts/install-deps.sh $(TEST_APT_PACKAGES) -- $(TEST_PY_PACKAGES)
	@PYTHON=$$(sed -n '1{s/^#! *//;s|^/usr/bin/env  *||;p;}' "$$(command -v supervisord)") \
		scripts/install-deps.sh -- $(SUPERVISOR_PY_PACKAGES)
	@python3 -c 'import portsyncd_client as c, sys; sys.exit(not c.__file__.startswith("$(CURDIR)/$(CLIENT)/"))' \
		2>/dev/null || { echo "install-deps: installing $(CLIENT) (editable)"; \
		python3 -m pip install -q -e $(CLIENT) 2>/dev/null \
		|| python3 -m pip install -q --break-system-packages -e $(CLIENT); }

build: deps
	$(SWIFT) build -c $(CONFIGURATION)

run: build
	PORTSYNCD_BIN=$(BIN) scripts/demo.sh

test: build lint test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	PORTSYNCD_BIN=$(BIN) python3 -m pytest -q Tests/integration
	@# What `make install` and `make deb` build: the optimizer (-O) can fail where a debug build does not.
	$(SWIFT) build -c release --product portsyncd
	SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_SECONDS)

test-unit: build
	$(SWIFT) test

test-integration: build test-deps
	PORTSYNCD_BIN=$(BIN) python3 -m pytest -q Tests/integration

bench: deps
	scripts/bench.sh

# The parsers of outside input under libFuzzer (the Fuzz/ package): the config file, netlink, database_config.json.
fuzz:
	SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_SECONDS)

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift Benchmarks/Package.swift Benchmarks/PipelineBenchmarks \
		$(FUZZ_SOURCES)

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift Benchmarks/Package.swift Benchmarks/PipelineBenchmarks \
		$(FUZZ_SOURCES)

clean:
	rm -rf .build .bench Benchmarks/.build Fuzz/.build

install:
	@scripts/install-deps.sh $(APT_PACKAGES) --
	$(SWIFT) build -c release --product portsyncd
	install -D -m 0755 .build/release/portsyncd /usr/bin/portsyncd
	install -D -m 0644 portsyncd.service /etc/systemd/system/portsyncd.service
	@if [ ! -e /etc/sonic/portsyncd.conf ]; then install -D -m 0644 etc/portsyncd.toml /etc/sonic/portsyncd.conf; fi
	@if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; start it with: systemctl start portsyncd"

run-system: install
	systemctl start portsyncd
	systemctl --no-pager status portsyncd
	journalctl -u portsyncd -f

# `make deb`: the Debian package in dist/, rebuilt when one of its inputs changed (packaging/README.md).
# `make test-systemd`: that package under a real systemd booted in a container (scripts/test-systemd.sh).
DEB_APT_PACKAGES := dpkg-dev binutils lintian
SYSTEMD_TEST_APT_PACKAGES := systemd systemd-container redis-server redis-tools iproute2 procps
DEB := dist/portsyncd_$(shell sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/PortSyncRuntime/Version.swift)_$(shell dpkg --print-architecture).deb
DEB_INPUTS := Package.swift $(wildcard Package.resolved) $(shell find Sources packaging -type f) portsyncd.service etc/portsyncd.toml README.md scripts/make-deb.sh

.PHONY: deb test-systemd

deb: $(DEB)

$(DEB): $(DEB_INPUTS)
	@scripts/install-deps.sh $(APT_PACKAGES) $(DEB_APT_PACKAGES) --
	SWIFT=$(SWIFT) scripts/make-deb.sh

test-systemd:
	@export TEST_SYSTEMD_STARTED=$$EPOCHREALTIME; \
	scripts/install-deps.sh $(SYSTEMD_TEST_APT_PACKAGES) -- && \
	$(MAKE) --no-print-directory deb && \
	scripts/test-systemd.sh $(DEB)
