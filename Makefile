# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install iphbench with torch (CPU build from local disk here;
# a CUDA machine can install its own torch first) and then run. The nnunet extra is installed with
# the torch just installed pinned (.venv/torch-pin.txt), else pip would replace it (constraints/nnunet.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.iphbench-installed
DEMO_OUT ?= demo_out

.PHONY: install test test-fast demo lint typecheck bench clean

$(STAMP): pyproject.toml constraints/nnunet.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q torch
	$(PY) -c "from importlib.metadata import version; print('torch==' + version('torch'))" > $(VENV)/torch-pin.txt
	$(PY) -m pip install -q -e '.[test,ray,dicom,nnunet]' -c constraints/nnunet.txt -c $(VENV)/torch-pin.txt
	# the numerical stack as `pip install` resolves it today (pandas 3), even into an older .venv;
	# pytest's closing summary prints the versions it ran with (tests/conftest.py)
	$(PY) -m pip install -q --upgrade numpy pandas scipy statsmodels -c $(VENV)/torch-pin.txt
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not gpu and not slow"

demo: $(STAMP)
	$(VENV)/bin/iphbench demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
