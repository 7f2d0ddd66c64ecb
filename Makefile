# PsychoChauffeur operations-as-code. Run as root on Debian 12: `make demo`, `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST := $(BIN)/pytest
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help deps venv image lint test test-bot test-lab test-roles test-infra test-playbooks demo bench drill lab-down clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

deps: ## Debian packages (debootstrap, systemd-container, apt-cacher-ng, PostgreSQL, ...)
	@scripts/install-deps.sh

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Python virtualenv .venv from pyproject.toml + constraints.txt

image: deps venv ## Build (once, cached under .lab/) the Debian 12 lab image
	$(PY) -m lab image
	$(PY) -m lab image --variant postgres

PARTS := $(PY) scripts/test_parts.py

lint: deps venv ## ruff + ansible-lint (production profile)
	$(PARTS) lint

test-bot: deps venv ## Bot unit/e2e tests against a real PostgreSQL and the sandbox, runbook coverage map
	$(PARTS) bot

test-lab: deps venv ## The lab tool itself: boot, SSH, apt proxy, two checkouts side by side, teardown
	$(PARTS) lab

test-roles: deps venv ## molecule test for every role on lab hosts (ROLES="bot backup" for some)
	$(PARTS) $(if $(ROLES),$(addprefix roles:,$(ROLES)),roles)

test-infra: deps venv ## site.yml on a fresh lab host + whole-host testinfra suite
	$(PARTS) infra

test-playbooks: deps venv ## every runbook procedure playbook, on three converged lab hosts (pb1-pb3)
	$(PARTS) playbooks

test: deps venv ## Every test suite of the repo, parts side by side (logs in .cache/test-logs/, summary at the end)
	$(PARTS)

demo: image ## Boot a lab host, converge site.yml, show the bot answering through the sandbox
	scripts/demo.sh

bench: deps venv ## Benchmarks (figures go to docs/PERFORMANCE.md)
	$(PY) -m bench

DRILL_CYCLES ?= 20
drill: image ## Operations drill on lab host d81: update, broken update, rollback, kill -9 under load (DRILL_CYCLES=20)
	$(PY) -m bench drill --cycles $(DRILL_CYCLES)

lab-down: venv ## Stop every lab host
	$(PY) -m lab down --all

clean: lab-down ## Remove lab hosts and caches (keeps the image)
	rm -rf .cache build dist *.egg-info
