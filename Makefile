VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.beyondgloss-installed
DEMO_OUT ?= demo_output

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo benchmark clean

$(STAMP): setup.py requirements/constraints.txt scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

demo: $(STAMP)
	$(VENV)/bin/beyondgloss demo --output_dir $(DEMO_OUT) --overwrite_output_dir $(DEMO_ARGS)

benchmark: $(STAMP)
	$(VENV)/bin/beyondgloss benchmark

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
