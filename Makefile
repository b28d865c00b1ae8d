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
APT_PACKAGES  := postgresql-$(PG_MAJOR) postgresql-server-dev-$(PG_MAJOR) libclang-dev clang sudo
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
        test lint test-unit test-pg test-regress test-bridge bench

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

# The bridge's main job, for now: the schema snapshot of a fixture database, summarised.
demo: db-start fixtures build
	./target/release/pg-nlq-bridge snapshot --no-stats \
	  --database "host=$(NLQ_PGSOCK) port=$(NLQ_PGPORT) user=postgres dbname=nlq_small"

## ---------------------------------------------------------------- tests

test: db-start
	@$(MAKE) --no-print-directory lint test-unit test-pg test-regress test-bridge
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

# Tier 4: the bridge against the project cluster.
test-bridge: db-start fixtures
	NLQ_TEST_DSN="host=$(NLQ_PGSOCK) port=$(NLQ_PGPORT) user=postgres" cargo test -p mcp-bridge --test '*'

## ---------------------------------------------------------------- benchmarks

bench: db-start
	bench/snapshot.sh
	bench/validate_run.sh
