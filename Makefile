# egw — build, test, bench. `make setup` installs everything a fresh Debian machine lacks.
SHELL := /bin/bash
NODE_TESTS = $(shell find test -name '*.test.ts' | sort)
# Debian packages the project needs (added as the data plane arrives).
DEB_PACKAGES ?= nftables conntrack iputils-ping iperf3 curl procps etcd-server openssl tcpdump chromium ethtool

.PHONY: setup deps build test typecheck bench demo clean manifests

setup: deps build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci; fi

build:
	npx tsc -p tsconfig.json

typecheck:
	npx tsc -p tsconfig.check.json

test: build typecheck
	node --import tsx --test --test-reporter=spec $(NODE_TESTS)

bench: build
	@mkdir -p tmp
	node --expose-gc --import tsx bench/run.ts $(BENCH) | tee tmp/bench.json

# A two-node cluster of network namespaces with egress gateways and traffic through them (root; KEEP=1 keeps it up).
demo: setup
	node --import tsx scripts/demo.ts

# The checked-in install YAML (deploy/kubernetes/), from src/kube/manifests.ts; a test fails when it is stale.
manifests:
	node --import tsx scripts/manifests.ts

clean:
	rm -rf dist
