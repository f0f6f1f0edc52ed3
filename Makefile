# Every target creates .venv on first use and installs the project into it, so that on a fresh
# machine `make test` (or `make demo`) is the only command needed.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow style quality clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	# The registry's torch build (CUDA, runs on CPU) is the one torchvision is built against.
	$(PYTHON) -m pip install --quiet torch torchvision
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Until the SynthAVA quickstart lands, the main job scores real sample photos with an UNTRAINED model:
# it shows the pipeline end to end, not meaningful scores.
demo: $(STAMP)
	$(PYTHON) -m cskd_hf.data.samples outputs/demo/photos
	$(VENV)/bin/cskd init --architecture mobilenetv2_100 --out outputs/demo/untrained-mv2
	$(VENV)/bin/cskd score outputs/demo/photos --model outputs/demo/untrained-mv2 --output outputs/demo/scores.csv
	@echo "Scores in outputs/demo/scores.csv. The model is UNTRAINED (random weights): its scores mean nothing yet."

test: $(STAMP)
	$(PYTHON) -m pytest

test-slow: $(STAMP)
	$(PYTHON) -m pytest -m slow

style: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

quality: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf build outputs .pytest_cache .ruff_cache
