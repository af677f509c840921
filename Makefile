# `make test` installs everything the suite needs (Python packages, the real peer servers
# under .peers/) and runs the whole suite. Each peer's installer is idempotent.
PY ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: test venv peers run bench image

test: venv peers
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$rc

venv:
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --upgrade pip
	@$(VENV)/bin/python -m pip install -q -e '.[test]'

peers:
	@set -e; for f in tests/peers/install-*.sh; do [ -f "$$f" ] || continue; \
	  echo "== $$f"; bash "$$f"; done

# The agent image and its GPU variant, built with buildah from the Dockerfile (no Docker daemon):
# `make image IMAGE_ARGS="--base debian"` where no container registry is reachable
# (deploy/build-image.sh --help lists the options).
IMAGE_ARGS ?=
image:
	deploy/build-image.sh $(IMAGE_ARGS)

run: venv
	$(VENV)/bin/mlwarden run

bench: venv peers
	@set -e; for f in benchmarks/[!_]*.py; do echo "== $$f"; $(VENV)/bin/python "$$f"; done
