# The two commands a new user needs: `make run` (mailpipe end to end against a
# local sandbox) and `make test`. Both create the virtual environment first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-all test-latest bench chaos lint install lock lock-upgrade redis-server tools \
	interop-servers screenshots mutation mutation-changed docs clean

# Every install takes the lock (requirements.txt: exact versions and hashes, written by
# `make lock`), so a fresh machine gets what CI passed with on any day. mailpipe itself is
# installed editable without build isolation: its build backend is in the lock too.
$(BIN)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

install: $(BIN)/.installed

# Rewrites the lock after a change to pyproject.toml, keeping today's versions where allowed.
lock: install
	UV=$(BIN)/uv scripts/lock

# Takes the newest release of every dependency into the lock: run make test-latest first.
lock-upgrade: install
	UV=$(BIN)/uv UPGRADE=--upgrade scripts/lock

# The suite against the newest releases that pyproject.toml allows, in a venv of its own,
# so that an upgrade of the lock is a decision made on evidence, not a surprise.
test-latest: install
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	$(BIN)/uv pip install -q --python .venv-latest/bin/python --index-url https://pypi.org/simple \
	  --upgrade -e '.[test,postgres,sandbox,flower,bench,docs]'
	.venv-latest/bin/python -m pip freeze --exclude-editable > .venv-latest/versions.txt
	touch .venv-latest/bin/.installed
	$(MAKE) test VENV=.venv-latest

# Tests start their own private redis-server on a free port; they only need
# the binary. Install it from the distribution where it is missing.
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "redis-server not found: installing it with apt-get"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server; }

# The tests also drive real Alertmanager and promtool (Debian packages). They start
# their own instances, so the services the packages start are stopped and disabled.
# systemd-analyze (package systemd) verifies deploy/systemd/; it starts nothing here.
# swaks needs Net::SSLeay (libnet-ssleay-perl, only recommended) for STARTTLS.
# Headless chromium signs in to the fake Microsoft login (mailpipe oauth authorize) and,
# driven by selenium through chromium-driver, uses the operator console.
# swaks, msmtp, curl and Nodemailer (npm, locked in tests/clients/) send through the relay.
tools: redis-server interop-servers
	@missing=""; services=""; \
	command -v prometheus-alertmanager >/dev/null || { \
	  missing="$$missing prometheus-alertmanager"; services="$$services prometheus-alertmanager"; }; \
	command -v promtool >/dev/null || { missing="$$missing prometheus"; services="$$services prometheus"; }; \
	command -v hey >/dev/null || missing="$$missing hey"; \
	command -v swaks >/dev/null || missing="$$missing swaks"; \
	command -v msmtp >/dev/null || missing="$$missing msmtp"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	perl -MNet::SSLeay -e 1 2>/dev/null || missing="$$missing libnet-ssleay-perl"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get (the tests run their own instances)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	  if [ -n "$$services" ] && command -v systemctl >/dev/null \
	     && systemctl is-system-running >/dev/null 2>&1; then \
	    $(SUDO) systemctl disable --now $$services 2>/dev/null || true; \
	  fi; \
	fi
	@[ tests/clients/node_modules/.package-lock.json -nt tests/clients/package-lock.json ] || \
	  npm ci --prefix tests/clients --no-audit --no-fund --silent

# The interop tests (tests/interop) start their own Dovecot (submission, and SASL for the
# others), Postfix and Exim. Debian's postfix and exim4 packages conflict (each is the MTA),
# so Exim is not installed: its binary (exim4-daemon-heavy, the build with Dovecot
# authentication) is extracted into $(EXIM_DIR) and only its libraries are installed;
# libnss-wrapper lets it find its user, Debian-exim, which only the exim4 package adds.
EXIM_DIR := .tools/exim4
interop-servers:
	@missing=""; \
	command -v dovecot >/dev/null || missing="$$missing dovecot-core"; \
	test -x /usr/lib/dovecot/submission || missing="$$missing dovecot-submissiond"; \
	test -x /usr/lib/dovecot/imap || missing="$$missing dovecot-imapd"; \
	command -v postfix >/dev/null || missing="$$missing postfix"; \
	ls /usr/lib/*/libnss_wrapper.so >/dev/null 2>&1 || missing="$$missing libnss-wrapper"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get (the tests run their own instances)"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends $$missing; \
	  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then \
	    $(SUDO) systemctl disable --now dovecot postfix 2>/dev/null || true; fi; \
	fi
	@test -x $(EXIM_DIR)/usr/sbin/exim4 || { set -e; \
	  echo "extracting exim4-daemon-heavy into $(EXIM_DIR) (postfix and exim4 conflict)"; \
	  rm -rf $(EXIM_DIR); mkdir -p $(EXIM_DIR)/deb; $(SUDO) apt-get update -q; \
	  (cd $(EXIM_DIR)/deb && apt-get download -q exim4-daemon-heavy); \
	  libs=""; for lib in $$(dpkg-deb -f $(EXIM_DIR)/deb/*.deb Depends | tr ',|' '\n\n' \
	    | sed 's/(.*)//; s/ //g' | grep '^lib'); do \
	    dpkg -s $$lib >/dev/null 2>&1 || libs="$$libs $$lib"; done; \
	  [ -z "$$libs" ] || $(SUDO) apt-get install -y -q --no-install-recommends $$libs; \
	  dpkg-deb -x $(EXIM_DIR)/deb/*.deb $(EXIM_DIR); chmod u-s $(EXIM_DIR)/usr/sbin/exim4; }

run: install redis-server
	VENV=$(VENV) deploy/quickstart.sh

# The sink is Postfix's smtp-sink (package postfix; the Postfix service it would
# start is stopped and disabled: the bench needs only the smtp-sink program).
bench: install redis-server
	@command -v hey >/dev/null || { \
	  echo "hey not found: installing it with apt-get (the HTTP intake's load generator)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q hey; }
	@command -v smtp-sink >/dev/null || { \
	  echo "smtp-sink not found: installing postfix with apt-get (the benchmark's SMTP sink)"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends postfix; \
	  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then \
	    $(SUDO) systemctl disable --now postfix 2>/dev/null || true; fi; }
	$(BIN)/python -m bench.run --profile

# 2,000 jobs while workers are SIGKILLed, Redis restarts and the token endpoint and
# SMTP server misbehave; checks that no job is lost and writes bench/CHAOS.md.
chaos: install redis-server
	$(BIN)/python -m bench.chaos

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: install tools lint
	$(BIN)/pytest

# The operator console's screenshots in docs/ (docs/console.md shows them), as its browser test
# takes them against a real worker: run after changing how the console looks.
screenshots: install tools
	MAILPIPE_TEST_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest -n0 -q \
	  tests/worker/faces/http/test_console.py -k "screenshots and sqlite"

# The documentation site (mkdocs.yml) into site/, strict: a broken link or anchor, a page
# missing from the nav or any other warning fails it (tests/deploy/test_docs.py builds it too).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Mutation testing (mutmut) of the modules that decide, each against its fast tests
# (tests/mutation/modules.toml); fails on a score under 90% or a survivor that
# tests/mutation/accepted.toml does not explain. MUTATION_JOBS=2 processes by default.
mutation: install redis-server
	$(BIN)/python scripts/mutation.py

# The same for the modules a change touched (its source or its tests), against the merge
# base with main, or the previous commit on main; exits at once when none was touched.
mutation-changed: install redis-server
	$(BIN)/python scripts/mutation.py --changed

# What CI runs: the suite on python3 (the oldest supported, 3.11), then on the newest.
NEWEST_PYTHON = 3.13
# Then mutation testing of the modules the last change touched (none touched: under a second).
test-all:
	$(MAKE) test
	newest=$$(scripts/newest-python $(NEWEST_PYTHON)) && \
	  $(MAKE) test PYTHON="$$newest" VENV=.venv-$(NEWEST_PYTHON)
	$(MAKE) mutation-changed

clean:
	rm -rf $(VENV) .venv-latest .mypy_cache .ruff_cache .pytest_cache mutants site
