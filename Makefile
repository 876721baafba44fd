# The two commands: `make demo` (the whole flow locally) and `make test` (what CI runs).
# Both start from a clean clone: `setup` installs the Python tools into .venv from the
# pinned requirements.txt (moto's server, cargo-lambda with zig, cfn-lint, SAM CLI).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: setup test lint unit template e2e demo bench sizes clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 is needed to create $(VENV)"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit, adapter and integration tests; the integration tests start moto themselves.
# The last line totals every test binary's result.
unit: setup
	@mkdir -p target
	set -o pipefail; cargo test --workspace --all-targets --locked 2>&1 | tee target/test-output.txt
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "cargo test total: %d passed, %d failed\n", p, f; if (p == 0) exit 1}' target/test-output.txt

test: setup lint unit
	@echo "make test: all checks passed"

demo: setup
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) .demo
