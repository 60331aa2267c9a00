# dcg_tf: `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
DEMO_DIR ?= demo_out

.PHONY: install test test-all demo bench clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null  # the notebooks' kernel
	touch $(STAMP)

# Unit and integration tests; real-data tests skip when ../shared/data is absent.
test: install
	$(PY) -m pytest -q -m "not slow" tests

# Everything, including slow tests (real data, longer training).
test-all: install
	$(PY) -m pytest -q tests

demo: install
	bash experiments/demo.sh $(DEMO_DIR)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
