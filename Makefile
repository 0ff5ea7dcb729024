# portsyncd: `make run` (a live demo) and `make test` (every test) on a fresh Debian 12 machine, as root.
SHELL := /bin/bash
SWIFT ?= swift
CONFIGURATION ?= debug
BIN := .build/$(CONFIGURATION)/portsyncd

APT_PACKAGES := libmnl-dev libhiredis-dev libsystemd-dev redis-server redis-tools pkg-config iproute2 python3 python3-pip systemd
PY_PACKAGES := redis pytest prometheus-client websockets jsonschema

.PHONY: all deps build run run-system install test test-unit test-integration bench format lint clean

all: build

deps:
	@scripts/install-deps.sh $(APT_PACKAGES) -- $(PY_PACKAGES)

build: deps
	$(SWIFT) build -c $(CONFIGURATION)

run: build
	PORTSYNCD_BIN=$(BIN) scripts/demo.sh

test: build lint
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	PORTSYNCD_BIN=$(BIN) python3 -m pytest -q Tests/integration

test-unit: build
	$(SWIFT) test

test-integration: build
	PORTSYNCD_BIN=$(BIN) python3 -m pytest -q Tests/integration

bench: deps
	scripts/bench.sh

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift Benchmarks/Package.swift Benchmarks/PipelineBenchmarks

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift Benchmarks/Package.swift Benchmarks/PipelineBenchmarks

clean:
	rm -rf .build .bench Benchmarks/.build

install:
	@scripts/install-deps.sh $(APT_PACKAGES) --
	$(SWIFT) build -c release --product portsyncd
	install -D -m 0755 .build/release/portsyncd /usr/bin/portsyncd
	install -D -m 0644 packaging/portsyncd.service /etc/systemd/system/portsyncd.service
	@if [ ! -e /etc/sonic/portsyncd.conf ]; then install -D -m 0644 etc/portsyncd.toml /etc/sonic/portsyncd.conf; fi
	@if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; start it with: systemctl start portsyncd"

run-system: install
	systemctl start portsyncd
	systemctl --no-pager status portsyncd
	journalctl -u portsyncd -f
