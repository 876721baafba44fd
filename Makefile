# The two commands: `make demo` (the whole flow locally) and `make test` (what CI runs).
# Both start from a clean clone: `setup` installs the Python tools into .venv from the
# pinned requirements.txt (moto's server, cargo-lambda with zig, cfn-lint, SAM CLI), and
# checkov into .venv-checkov from requirements-checkov.txt (its pins conflict with SAM's).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
ARM_TARGET := aarch64-unknown-linux-gnu

.PHONY: setup test lint unit prices-check template e2e deploy-check package release demo local bench fuzz clean

# Cases per property in tests/properties.rs: `make test` runs this many, `make fuzz` more.
PROPTEST_CASES ?= 4000
FUZZ_CASES ?= 100000
# Rounds of 25 random job lives in tests/history.rs under `make fuzz` (`make test` runs 8).
FUZZ_HISTORY_ROUNDS ?= 40

setup: $(STAMP) $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 is needed to create $(VENV)"; exit 1; }
	@command -v cargo >/dev/null || { echo "Rust (cargo) is needed: https://rustup.rs"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	@# arm64 cross-compilation (sam build, cargo lambda build --arm64): zig comes from PyPI above.
	rustup target list --installed | grep -qx $(ARM_TARGET) || rustup target add $(ARM_TARGET)
	touch $@

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit, adapter and integration tests; the integration tests start moto themselves.
# The last line totals every test binary's result.
# The integration tests run the whole handler on the test's own thread; in a
# debug build (unoptimized, large async frames) a poll's deepest path needs
# more than the 2 MiB Rust gives a test thread. The release build the Lambda
# runs is far smaller, and runs on the main thread (8 MiB). A plain `cargo test`
# needs the same: `RUST_MIN_STACK=16777216 cargo test`.
TEST_STACK ?= 16777216

unit: setup
	@mkdir -p target
	set -o pipefail; RUST_MIN_STACK=$(TEST_STACK) PROPTEST_CASES=$(PROPTEST_CASES) cargo test --workspace --all-targets --locked 2>&1 | tee target/test-output.txt
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "cargo test total: %d passed, %d failed\n", p, f; if (p == 0) exit 1}' target/test-output.txt
	$(PY) -m unittest discover -s scripts -p 'test_*.py'
	$(PY) scripts/cost.py --check

# The batch price table built into the function (prices/bedrock-batch.json):
# shape, prices, regions, dates and sources, offline; warns when a reading is
# older than 180 days (docs/notifications.md, "What a job cost").
prices-check: setup
	$(PY) scripts/prices_check.py

# The template: linted, validated, checked for security findings (each fixed, or
# skipped in the resource's Metadata with the reason), and built for arm64 with
# cargo-lambda (no Docker). The member accounts' template (plain CloudFormation,
# for StackSets) and a team's template (team/template.yaml) are linted and checked
# the same way; scripts/test_member_account.py deploys the first, and
# scripts/test_team_template.py expands the second's policies (make unit).
template: setup
	cfn-lint template.yaml member-account/template.yaml team/template.yaml
	sam validate --lint
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --quiet --compact --skip-download
	$(CHECKOV_VENV)/bin/checkov -f member-account/template.yaml --quiet --compact --skip-download
	$(CHECKOV_VENV)/bin/checkov -f team/template.yaml --quiet --compact --skip-download
	sam build

# The built function under `cargo lambda watch`, sent every file in events/.
e2e: setup
	$(PY) scripts/e2e.py

# The release's two files for deploying without Rust (dist/, see the README's
# Deploy): the arm64 bootstrap built with the command `sam build` runs (so the two
# share one build), zipped, and the template pointing at the zip.
package: setup
	cargo lambda build --release --arm64 --bin bedrock-batch-monitor
	$(PY) scripts/package.py

# The command line for the release: bbm for Linux x86_64 and arm64, each cross-compiled
# with cargo-lambda's zig (as `package` builds the function; no Docker; `--features cli`
# because Cargo.toml's cargo-lambda settings leave bbm out of the function's build),
# packed as dist/bbm-<version>-<target>.tar.gz with a SHA256SUMS file. Not part of
# `test` (two release builds); docs/cli.md says what was tried for macOS.
release: setup
	for t in x86_64-unknown-linux-gnu $(ARM_TARGET); do \
	  cargo lambda build --release --target $$t --bin bbm --features cli --lambda-dir target/bbm-release/$$t || exit 1; \
	done
	$(PY) scripts/release.py

# What a first real deploy would meet, offline: names (SAM's generated ones
# included) that never collide and fit, every failed delivery watched by an
# alarm, every partition deploys, metrics at every LogLevel, and the package.
deploy-check: setup package
	cargo build --quiet --workspace --bins
	$(PY) scripts/deploy_check.py

test: setup lint unit prices-check e2e demo template deploy-check
	@echo "make test: all checks passed"

# Figures (binary sizes, cold start, poll cycle, peak memory); not part of `test`.
# BENCH_TABLE=dynalite: the polls with the table on dynalite (installed with npm into
# .dynalite/), the function's own time; BENCH_BINARY=<path> measures another build.
bench: setup
	$(PY) scripts/bench.py

# The property tests (event parsing, ARN parsing, item decoding) at FUZZ_CASES
# cases each, then the history check over FUZZ_HISTORY_ROUNDS rounds with fresh
# seeds (a failure prints its seed; HISTORY_SEED replays it); figures in docs/tests-and-figures.md.
fuzz: setup
	time PROPTEST_CASES=$(FUZZ_CASES) cargo test --locked --test properties
	time HISTORY_ROUNDS=$(FUZZ_HISTORY_ROUNDS) HISTORY_BASE_SEED=$$(date +%s) cargo test --locked --test history -- --nocapture

demo: setup
	$(PY) scripts/demo.py

# The stand-ins and the function on fixed ports (moto 5000, fake Bedrock 4010,
# cargo lambda watch 9000) for trying events by hand; Ctrl-C stops them.
local: setup
	$(PY) scripts/local.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .demo .aws-sam dist
