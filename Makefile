# Two commands set up and run everything on a fresh machine:
#   make bench   the merge gate (pytest benchmarks/ --benchmark-only), tier `gate`
#   make test    the unit tests
# Every pair: make bench TIER=full. Extra pytest arguments: make bench ARGS="-k int8"
#
# tox lives in its own virtualenv; the suite's environment (~9 GB) is built once
# under COMPRESS_BENCH_ENV and shared by both commands and by every clone.
COMPRESS_BENCH_ENV ?= $(HOME)/.cache/compress-bench-env
TOX_VENV := $(COMPRESS_BENCH_ENV)/tox-venv
TOX := $(TOX_VENV)/bin/tox
PYTHON ?= python3.11
ARGS ?=
TIER ?= gate

.PHONY: bench test data toolchain asv history pr-gate baseline browser dashboard-assets dashboard
bench: $(TOX) data toolchain
	$(TOX) run -e bench --workdir $(COMPRESS_BENCH_ENV)/tox -- --tier $(TIER) $(ARGS)

test: $(TOX) data toolchain browser dashboard-assets
	$(TOX) run -e tests --workdir $(COMPRESS_BENCH_ENV)/tox -- $(ARGS)

$(TOX):
	$(PYTHON) -m venv $(TOX_VENV)
	$(TOX_VENV)/bin/pip install --quiet "tox==4.67.15" "tox-ignore-env-name-mismatch==0.2.0.post2"

# The pull-request gate: the benchmark gate saved to $(PR_DIR)/run.json, then that run judged
# against $(PR_DIR)/baseline.json (a run of the same machine on main: `make baseline`):
# fails on a broken bound, a missing pair, or a latency regression beyond the factor;
# writes a Markdown summary for the PR to $(PR_DIR)/summary.md and prints it.
PR_DIR ?= $(HOME)/.cache/compress-bench/pr-gate
FACTOR ?= 2.0
pr-gate: $(TOX) data toolchain
	@mkdir -p $(PR_DIR) && rm -f $(PR_DIR)/run.json
	@rc=0; $(TOX) run -e bench --workdir $(COMPRESS_BENCH_ENV)/tox -- --tier $(TIER) \
	    --benchmark-json=$(PR_DIR)/run.json $(ARGS) || rc=$$?; \
	  $(SUITE_BIN)/python -m compress compare $(PR_DIR)/run.json --baseline $(PR_DIR)/baseline.json \
	    --factor $(FACTOR) --markdown $(PR_DIR)/summary.md || rc=1; \
	  exit $$rc

# Make the last pr-gate run the baseline (on main, after it landed).
baseline:
	@test -f $(PR_DIR)/run.json || { echo "no $(PR_DIR)/run.json: run 'make pr-gate' first"; exit 2; }
	cp $(PR_DIR)/run.json $(PR_DIR)/baseline.json
	@echo "baseline: $(PR_DIR)/baseline.json"

# Fashion-MNIST from Debian's dataset-fashion-mnist, when this machine can install it.
data:
	@sh .ci/install-data.sh

# A C++ compiler (Debian's g++) for the torch-inductor runtime, when none is present.
toolchain:
	@sh .ci/install-toolchain.sh

# Debian's chromium and chromium-driver for tests/test_dashboard.py (the asv pages opened headless).
browser:
	@sh .ci/install-browser.sh

# The asv dashboard's JavaScript and CSS (jQuery, flot, bootstrap, ...) from the npm registry, once,
# each file's hash checked (compress/reporting/dashboard.py; stdlib only). Never fatal: without them
# tests/test_dashboard.py and `make dashboard` fail, saying what to install or where to put them.
DASHBOARD_ASSETS ?= $(COMPRESS_BENCH_ENV)/dashboard-assets
dashboard-assets:
	@$(PYTHON) compress/reporting/dashboard.py fetch --dest $(DASHBOARD_ASSETS) || \
	  echo "dashboard-assets: not fetched; tests/test_dashboard.py will fail until they are"

# asv over git history, offline, in the suite's environment (built by `make bench` or `make test`):
# each commit checked out as a worktree and benchmarked (compress/reporting/history.py). Results and HTML
# stay under .asv/. `make asv`: HEAD; `make history RANGE=HEAD~5..HEAD`; TIER=full for every pair.
SUITE_BIN := $(COMPRESS_BENCH_ENV)/tox/suite/bin
RANGE ?=
COUNT ?= 5
asv: $(TOX)
	@test -x $(SUITE_BIN)/asv || { echo "run 'make test' or 'make bench' first: it builds the environment"; exit 2; }
	$(SUITE_BIN)/python -m compress.reporting.history --count 1 --tier $(TIER) $(ARGS)

history: $(TOX)
	@test -x $(SUITE_BIN)/asv || { echo "run 'make test' or 'make bench' first: it builds the environment"; exit 2; }
	$(SUITE_BIN)/python -m compress.reporting.history $(RANGE) --count $(COUNT) --tier $(TIER) $(ARGS)

# The asv pages of .asv/results and of the machines kept in results/asv/ (a GPU host CI cannot
# reach), readable offline: `asv publish`, then every CDN script and
# stylesheet pointed at local copies in .asv/html/vendor/. Open .asv/html/index.html through a
# web server (`asv preview`, or python -m http.server -d .asv/html).
dashboard: dashboard-assets
	@test -x $(SUITE_BIN)/asv || { echo "run 'make test' or 'make bench' first: it builds the environment"; exit 2; }
	$(SUITE_BIN)/python -m compress.reporting.dashboard publish --config asv.conf.json --assets $(DASHBOARD_ASSETS) \
	  --merge results/asv
