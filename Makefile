# pg_nlq — one-command set-up, build, cluster, tests and demo.
#
#   make demo    install what is missing, build and install the extension, start the project
#                cluster, load the fixtures, run the bridge's main job
#   make test    the same set-up, then every test tier (lint, unit, pg_test, SQL regression,
#                bridge integration)
#
# Every target is idempotent and safe to re-run; `make setup` does nothing slow when all is
# present. Works as root on a fresh Debian 12 machine (the postgres server itself runs as the
# `postgres` OS user through runuser).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PG_MAJOR      := 15
PG_BIN        := /usr/lib/postgresql/$(PG_MAJOR)/bin
PG_CONFIG     := $(PG_BIN)/pg_config
PGRX_VERSION  := 0.18.1
APT_PACKAGES  := postgresql-$(PG_MAJOR) postgresql-server-dev-$(PG_MAJOR) libclang-dev clang sudo openssl python3-venv
PGRX_HOME     ?= $(HOME)/.pgrx
export PGRX_HOME

# The project cluster: a data directory the postgres user can reach (a checkout under /root is
# not), a fixed non-default port, loopback TCP and a private unix socket directory.
NLQ_STATE     ?= /var/lib/postgresql/pg_nlq
NLQ_PGDATA    ?= $(NLQ_STATE)/data
NLQ_PGSOCK    ?= $(NLQ_STATE)/run
NLQ_PGPORT    ?= 54315
NLQ_PGLOG     ?= $(NLQ_STATE)/server.log
# Scratch cluster used by `cargo pgrx test` (pgrx starts and stops it itself).
PGRX_TEST_PGDATA ?= /tmp/pg_nlq_pgrx_test

export PGHOST := $(NLQ_PGSOCK)
export PGPORT := $(NLQ_PGPORT)
export PGUSER := postgres
export NLQ_PGSOCK NLQ_PGPORT

PSQL    := $(PG_BIN)/psql -X -v ON_ERROR_STOP=1 -q
AS_PG   := runuser -u postgres --
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# builds the extension (release) and installs it into the system PostgreSQL
INSTALL_EXT = cd pg_nlq_ext && cargo pgrx install --release --pg-config $(PG_CONFIG)
EXT_SQL  = $(shell $(PG_CONFIG) --sharedir)/extension/pg_nlq--$(shell sed -n 's/^version = "\(.*\)"/\1/p' pg_nlq_ext/Cargo.toml).sql

.PHONY: help setup build install db-start db-stop db-status db-destroy psql fixtures demo \
        test lint test-unit test-pg test-regress test-bridge bench eval

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST) | head -n 8
	@echo "other targets: setup install db-start db-stop db-status db-destroy psql fixtures bench"

## ---------------------------------------------------------------- set-up

setup:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@if ! cargo pgrx --version 2>/dev/null | grep -q " $(PGRX_VERSION)$$"; then \
	  echo "setup: installing cargo-pgrx $(PGRX_VERSION) (about 8 minutes)"; \
	  cargo install cargo-pgrx --version $(PGRX_VERSION) --locked; \
	fi
	@if ! grep -qs "^pg$(PG_MAJOR) = \"$(PG_CONFIG)\"" "$(PGRX_HOME)/config.toml"; then \
	  echo "setup: cargo pgrx init --pg$(PG_MAJOR) $(PG_CONFIG)"; \
	  cargo pgrx init --pg$(PG_MAJOR) $(PG_CONFIG); \
	fi

## ---------------------------------------------------------------- build and install

build: setup
	cargo build --release -p mcp-bridge

install: setup
	$(INSTALL_EXT)

## ---------------------------------------------------------------- the project cluster

db-start: install
	@if [ ! -s "$(NLQ_PGDATA)/PG_VERSION" ]; then \
	  echo "db-start: initdb $(NLQ_PGDATA)"; \
	  install -d -o postgres -g postgres -m 755 "$(NLQ_STATE)"; install -d -o postgres -g postgres -m 700 "$(NLQ_PGDATA)"; \
	  $(AS_PG) $(PG_BIN)/initdb -D "$(NLQ_PGDATA)" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null; \
	  cp sql/cluster.conf "$(NLQ_PGDATA)/pg_nlq_cluster.conf"; \
	  chown postgres:postgres "$(NLQ_PGDATA)/pg_nlq_cluster.conf"; \
	  echo "include 'pg_nlq_cluster.conf'" >> "$(NLQ_PGDATA)/postgresql.conf"; \
	fi
	@install -d -o postgres -g postgres -m 755 "$(NLQ_PGSOCK)"
	@if ! $(AS_PG) $(PG_BIN)/pg_ctl -D "$(NLQ_PGDATA)" status >/dev/null 2>&1; then \
	  echo "db-start: starting on port $(NLQ_PGPORT), socket $(NLQ_PGSOCK)"; \
	  $(AS_PG) $(PG_BIN)/pg_ctl -D "$(NLQ_PGDATA)" -l "$(NLQ_PGLOG)" -w -t 60 \
	    -o "-p $(NLQ_PGPORT) -k $(NLQ_PGSOCK) -c listen_addresses=127.0.0.1" start >/dev/null; \
	fi
	@$(MAKE) --no-print-directory ensure-extension

# pg_nlq in every database the cluster serves; re-created where the installed build changed
# (same version, new functions), so a dev loop never runs against stale SQL definitions.
.PHONY: ensure-extension
ensure-extension:
	@sum=$$(cat "$(EXT_SQL)" $$($(PG_CONFIG) --pkglibdir)/pg_nlq.so | md5sum | cut -d' ' -f1); \
	old=$$(cat "$(NLQ_STATE)/extension.md5" 2>/dev/null || true); \
	for db in $$($(PSQL) -d postgres -Atc "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"); do \
	  if [ "$$sum" != "$$old" ]; then \
	    $(PSQL) -d "$$db" -c "DROP EXTENSION IF EXISTS pg_nlq CASCADE" 2>/dev/null; \
	  fi; \
	  $(PSQL) -d "$$db" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_nlq"; \
	done; \
	echo "$$sum" > "$(NLQ_STATE)/extension.md5"

db-stop:
	@if [ -s "$(NLQ_PGDATA)/PG_VERSION" ] && $(AS_PG) $(PG_BIN)/pg_ctl -D "$(NLQ_PGDATA)" status >/dev/null 2>&1; then \
	  $(AS_PG) $(PG_BIN)/pg_ctl -D "$(NLQ_PGDATA)" -m fast -w stop >/dev/null; echo "db-stop: stopped"; \
	else echo "db-stop: not running"; fi

db-status:
	@$(AS_PG) $(PG_BIN)/pg_ctl -D "$(NLQ_PGDATA)" status || true

db-destroy: db-stop
	rm -rf "$(NLQ_STATE)"

psql:
	$(PG_BIN)/psql -X -d $${DB:-postgres}

## ---------------------------------------------------------------- fixtures and demo

# The fixture databases (fixtures/README.md): loads what is missing or out of date;
# FORCE="nlq_large ..." rebuilds those even if current.
fixtures: db-start
	fixtures/load.sh $(foreach db,$(FORCE),--force $(db))

# The bridge's main job: check the configuration, then answer a question in plain language
# when a model is configured (OPENAI_API_KEY; OPENAI_BASE_URL for another OpenAI-compatible
# endpoint). Without a key (no model is reachable from CI machines) it says so and shows the
# checked read-only path the answers go through.
BRIDGE        := ./target/release/pg-nlq-bridge
BRIDGE_CONFIG ?= fixtures/bridge.toml
DEMO_QUESTION ?= Which five customers spent the most on books, and how much did each spend?
DEMO_LARGE_QUESTION ?= Which vendors had the most late goods receipts in 2024?
demo: db-start fixtures bridge-role build
	$(BRIDGE) check-config --config $(BRIDGE_CONFIG)
	@if [ -n "$${OPENAI_API_KEY:-}" ]; then \
	  $(BRIDGE) ask --config $(BRIDGE_CONFIG) --return both "$(DEMO_QUESTION)"; \
	else \
	  echo; echo "demo: OPENAI_API_KEY is not set, so the bridge has no model to ask \"$(DEMO_QUESTION)\"."; \
	  echo "demo: set it and run 'make demo' again. Meanwhile, the path every answer takes (nlq_validate, then nlq_run):"; echo; \
	  $(BRIDGE) run --config $(BRIDGE_CONFIG) --db nlq_small --limit 5 \
	    "SELECT c.first_name || ' ' || c.last_name AS customer, sum(oi.quantity * oi.unit_price) AS spent FROM public.customers c JOIN public.orders o ON o.customer_id = c.id JOIN public.order_items oi ON oi.order_id = o.id GROUP BY c.id ORDER BY spent DESC"; \
	  echo; echo "demo: and a write is refused before it runs:"; \
	  ! $(BRIDGE) run --config $(BRIDGE_CONFIG) --db nlq_small "DELETE FROM public.orders"; \
	  echo; echo "demo: what the model would be sent for the question (schema linking, no model call):"; echo; \
	  $(BRIDGE) context --config $(BRIDGE_CONFIG) --explain "$(DEMO_QUESTION)" | sed -n '1,40p'; \
	  echo "demo: ... (the whole context: $(BRIDGE) context --config $(BRIDGE_CONFIG) \"<question>\")"; \
	  echo; echo "demo: on the 179 relations of nlq_large, only the part a question needs is sent:"; echo; \
	  $(BRIDGE) context --config $(BRIDGE_CONFIG) --explain "$(DEMO_LARGE_QUESTION)" | sed -n '1,/^---- schema context/p'; \
	fi

# The offline part of the evaluation (issue 13): per database, level and language, strict
# gold-table recall (gold = what nlq_validate reports for each expected SQL of
# fixtures/TEST_QUERIES.md), prompt tokens, and routing accuracy with no database named. No
# model. Read-only on the fixtures. EVAL_DEPS= skips the cluster set-up (it must be running).
# Targets: nlq_large English recall >= 0.97 with median prompt <= 4000; routing >= 0.95.
EVAL_DEPS ?= db-start fixtures bridge-role
EVAL_OUT  ?= target/eval/fixtures
eval: $(EVAL_DEPS)
	rm -rf "$(EVAL_OUT)"
	NLQ_PGSOCK="$(NLQ_PGSOCK)" NLQ_PGPORT="$(NLQ_PGPORT)" \
	  cargo run -q -p mcp-bridge --bin pg-nlq-bridge -- eval --config $(BRIDGE_CONFIG) \
	  --cases fixtures/TEST_QUERIES.md --out "$(EVAL_OUT)"

## ---------------------------------------------------------------- tests

test: db-start
	@$(MAKE) --no-print-directory lint test-unit test-pg test-regress test-attack test-bridge
	@echo "make test: all tiers passed"

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Tier 1: backend-free logic. The extension's #[pg_test]s (named pg_*) need a backend: they
# run in test-pg, with these plain tests again.
test-unit: setup
	cargo test -p pg_nlq_ext --lib -- --skip ::pg_
	cargo test -p mcp-bridge --bins --lib

# Tier 2: #[pg_test] inside a real backend (pgrx starts its own scratch cluster as postgres).
# `cargo pgrx test --runas` installs its test build (which carries a validator bypass for the
# defence-in-depth tests) into the system PostgreSQL with `sudo cp`, overwriting the library in
# place: unlink it first so running backends keep their mapping instead of crashing, and put
# the release build back afterwards, pass or fail.
test-pg: install
	install -d -o postgres -g postgres -m 700 "$(PGRX_TEST_PGDATA)"
	rm -f "$$($(PG_CONFIG) --pkglibdir)/pg_nlq.so"
	status=0; \
	(cd pg_nlq_ext && cargo pgrx test pg$(PG_MAJOR) --runas postgres --pgdata "$(PGRX_TEST_PGDATA)") || status=$$?; \
	rm -f "$$($(PG_CONFIG) --pkglibdir)/pg_nlq.so"; \
	($(INSTALL_EXT)) >/dev/null; \
	exit $$status

# Tier 3: SQL-level regression files, readable by a DBA, against the project cluster.
test-regress: db-start
	@rm -rf sql/regress/results
	@$(PSQL) -d postgres -c "DROP DATABASE IF EXISTS nlq_regress WITH (FORCE)" \
	  -c "CREATE DATABASE nlq_regress TEMPLATE template0"
	$(PG_BIN)/../lib/pgxs/src/test/regress/pg_regress \
	  --use-existing --host="$(NLQ_PGSOCK)" --port=$(NLQ_PGPORT) --user=postgres \
	  --inputdir=sql/regress --outputdir=sql/regress --dbname=nlq_regress \
	  $$(cd sql/regress/sql && ls *.sql | sed 's/\.sql$$//' | sort) \
	  || { cat sql/regress/regression.diffs 2>/dev/null | head -200; exit 1; }

# Tier 4: the bridge against the project cluster. The bridge connects as the least-privilege
# role (NLQ_TEST_BRIDGE_DSN); set-up and cross-checks use the superuser (NLQ_TEST_DSN).
test-bridge: db-start fixtures bridge-role python-mcp
	NLQ_TEST_DSN="host=$(NLQ_PGSOCK) port=$(NLQ_PGPORT) user=postgres" \
	NLQ_TEST_BRIDGE_DSN="host=$(NLQ_PGSOCK) port=$(NLQ_PGPORT) user=nlq_bridge" \
	NLQ_PYTHON="$(NLQ_VENV)/bin/python" \
	NLQ_PSQL="$(PG_BIN)/psql" \
	  cargo test -p mcp-bridge --test '*'

# The least-privilege role the bridge connects as (sql/bridge_role.sql) in each fixture
# database, with the fixtures' protected objects denied to it in nlq_large
# (fixtures/bridge_policy.sql). Idempotent.
.PHONY: bridge-role
bridge-role: fixtures
	@for db in nlq_small nlq_medium nlq_large; do \
	  $(PSQL) -d "$$db" -v role=nlq_bridge -f sql/bridge_role.sql >/dev/null; \
	done
	@$(PSQL) -d postgres -f fixtures/bridge_policy.sql

# The official Python MCP SDK (pinned), for the bridge's interoperability test
# (mcp-bridge/tests/python_sdk.rs), in a virtual environment beside the cluster.
MCP_PY_VERSION := 2.3.0
NLQ_VENV       ?= $(NLQ_STATE)/venv
.PHONY: python-mcp
python-mcp: setup
	@if [ "$$("$(NLQ_VENV)/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" != "$(MCP_PY_VERSION)" ]; then \
	  echo "python-mcp: installing mcp $(MCP_PY_VERSION) into $(NLQ_VENV)"; \
	  [ -x "$(NLQ_VENV)/bin/python" ] || python3 -m venv "$(NLQ_VENV)"; \
	  "$(NLQ_VENV)/bin/python" -m pip install -q --disable-pip-version-check "mcp==$(MCP_PY_VERSION)"; \
	fi

# The attack tier (sql/attack/README.md): PostgreSQL's whole regression suite (the SQL files
# libpg_query bundles in the pglast sdist, pinned by version and sha256, downloaded once into a
# cache) and a seeded sqlsmith batch against the fixtures, every statement through
# nlq_validate() and nlq_run() as a non-superuser and as a superuser: no raise, no crash, no
# hang, a known code on every answer and every error, nothing written.
PGLAST_VERSION   := 7.22
PGLAST_SHA256    := d7ee5b5161cf31913a06fdab8615e9e02144761761c481002789f968b446d653
PSYCOPG_VERSION  := 3.2.10
ATTACK_STATE     ?= $(NLQ_STATE)/attack
ATTACK_VENV      ?= $(ATTACK_STATE)/venv
SQLSMITH_SEED    ?= 1
SQLSMITH_QUERIES ?= 5000
ATTACK_ROLE      := nlq_attack_reader
ATTACK_PY         = $(ATTACK_VENV)/bin/python sql/attack
ATTACK_DSN        = host=$(NLQ_PGSOCK) port=$(NLQ_PGPORT)
.PHONY: test-attack
test-attack: db-start fixtures
	@start=$$(date +%s); \
	dpkg-query -W -f='$${Status}' sqlsmith 2>/dev/null | grep -q "install ok installed" || { \
	  $(SUDO) apt-get update -qq; DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends sqlsmith; }; \
	install -d "$(ATTACK_STATE)/cache"; \
	if ! "$(ATTACK_VENV)/bin/python" -c 'import importlib.metadata as m; assert m.version("pglast") == "$(PGLAST_VERSION)" and m.version("psycopg") == "$(PSYCOPG_VERSION)"' 2>/dev/null; then \
	  echo "test-attack: installing pglast $(PGLAST_VERSION), psycopg $(PSYCOPG_VERSION) into $(ATTACK_VENV)"; \
	  [ -x "$(ATTACK_VENV)/bin/python" ] || python3 -m venv "$(ATTACK_VENV)"; \
	  "$(ATTACK_VENV)/bin/python" -m pip install -q --disable-pip-version-check --only-binary :all: \
	    "pglast==$(PGLAST_VERSION)" "psycopg==$(PSYCOPG_VERSION)" "psycopg-binary==$(PSYCOPG_VERSION)"; \
	fi; \
	sdist="$(ATTACK_STATE)/cache/pglast-$(PGLAST_VERSION).tar.gz"; \
	if ! echo "$(PGLAST_SHA256)  $$sdist" | sha256sum -c --status 2>/dev/null; then \
	  echo "test-attack: downloading the pglast $(PGLAST_VERSION) sdist"; rm -f "$$sdist"; \
	  "$(ATTACK_VENV)/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
	    "pglast==$(PGLAST_VERSION)" -d "$(ATTACK_STATE)/cache"; \
	  echo "$(PGLAST_SHA256)  $$sdist" | sha256sum -c --quiet; \
	fi; \
	regress="$(ATTACK_STATE)/cache/pglast-$(PGLAST_VERSION)/libpg_query/test/sql/postgres_regress"; \
	[ -d "$$regress" ] || tar -xzf "$$sdist" -C "$(ATTACK_STATE)/cache" "pglast-$(PGLAST_VERSION)/libpg_query/test/sql/postgres_regress"; \
	$(ATTACK_PY)/split_regress.py "$$regress" "$(ATTACK_STATE)/regress.jsonl"; \
	$(ATTACK_PY)/scratch.py --dsn "$(ATTACK_DSN) user=postgres" --db nlq_attack \
	  --setup "$(ATTACK_STATE)/regress.jsonl" --role $(ATTACK_ROLE); \
	status=0; \
	$(ATTACK_PY)/drive.py --label "regress suite as $(ATTACK_ROLE)" --input "$(ATTACK_STATE)/regress.jsonl" \
	  --dsn "$(ATTACK_DSN) dbname=nlq_attack user=$(ATTACK_ROLE)" --admin-dsn "$(ATTACK_DSN) dbname=nlq_attack user=postgres" \
	  --failures "$(ATTACK_STATE)/failures-regress-reader.jsonl" || status=1; \
	$(ATTACK_PY)/drive.py --label "regress suite as postgres" --input "$(ATTACK_STATE)/regress.jsonl" \
	  --dsn "$(ATTACK_DSN) dbname=nlq_attack user=postgres" \
	  --failures "$(ATTACK_STATE)/failures-regress-postgres.jsonl" || status=1; \
	for db in nlq_small nlq_medium; do \
	  $(ATTACK_PY)/sqlsmith.py --target "$(ATTACK_DSN) dbname=$$db user=postgres" --seed $(SQLSMITH_SEED) \
	    --max-queries $(SQLSMITH_QUERIES) "$(ATTACK_STATE)/sqlsmith-$$db.jsonl"; \
	  $(ATTACK_PY)/drive.py --label "sqlsmith on $$db as $(ATTACK_ROLE)" --input "$(ATTACK_STATE)/sqlsmith-$$db.jsonl" \
	    --dsn "$(ATTACK_DSN) dbname=$$db user=$(ATTACK_ROLE)" --admin-dsn "$(ATTACK_DSN) dbname=$$db user=postgres" \
	    --failures "$(ATTACK_STATE)/failures-sqlsmith-$$db-reader.jsonl" || status=1; \
	  $(ATTACK_PY)/drive.py --label "sqlsmith on $$db as postgres" --input "$(ATTACK_STATE)/sqlsmith-$$db.jsonl" \
	    --dsn "$(ATTACK_DSN) dbname=$$db user=postgres options='-c pg_nlq.statement_timeout=2000'" \
	    --failures "$(ATTACK_STATE)/failures-sqlsmith-$$db-postgres.jsonl" || status=1; \
	done; \
	echo "test-attack: $$([ $$status = 0 ] && echo passed || echo FAILED) in $$(( $$(date +%s) - start )) s"; \
	exit $$status

## ---------------------------------------------------------------- benchmarks

bench: db-start fixtures
	bench/snapshot.sh
	bench/validate_run.sh
	NLQ_TEST_DSN="host=$(NLQ_PGSOCK) port=$(NLQ_PGPORT) user=postgres" \
	  cargo run --release -q -p mcp-bridge --example bridge_bench
	NLQ_PGSOCK="$(NLQ_PGSOCK)" NLQ_PGPORT="$(NLQ_PGPORT)" \
	  cargo run --release -q -p mcp-bridge --example context_bench
