# Set-up and test commands; the README and .ci/run call exactly these.
#
#   make setup   create .venv, install torch first, then the project with torch held
#   make test    run the whole test suite
#
# Variables: PYTHON (interpreter used to create the venv), TORCH_VERSION,
# TORCH_INDEX (optional extra index, e.g. https://download.pytorch.org/whl/cu124).

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin
CONSTRAINTS := $(VENV)/torch-constraint.txt

.PHONY: setup test lint clean-venv

setup:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# 1. torch first, so the wheel that fits this machine is the one that stays.
	@if $(BIN)/python -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$(TORCH_VERSION)' else 1)" 2>/dev/null; then \
		echo "torch $(TORCH_VERSION) already installed"; \
	else \
		$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)); \
	fi
	@# 2. hold torch at exactly the installed build (e.g. 2.13.0+cpu) for every later install.
	$(BIN)/python -m pip freeze | grep -i '^torch==' > $(CONSTRAINTS)
	@echo "pip constraint: $$(cat $(CONSTRAINTS))"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@# ESPnet's HiFi-GAN modules (vocoder): --no-deps, as its own pins would replace torch.
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --no-deps espnet humanfriendly typeguard torch_complex editdistance
	@# 3. system extras: Debian flite voices (root only, best effort) and an ffmpeg on PATH for Gradio.
	@if ! command -v flite >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get install -y -q flite >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q flite >/dev/null 2>&1)) \
			&& echo "installed flite" || echo "note: could not install flite; the corpus uses espeak-ng voices only"; \
		else \
			echo "note: flite not found (install it with 'apt-get install flite' for its voices)"; \
		fi; \
	fi
	@ln -sf "$$($(BIN)/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" $(BIN)/ffmpeg
	@# 4. the install must not have replaced torch.
	@$(BIN)/python -c "import torch; v = torch.__version__; assert v.split('+')[0] == '$(TORCH_VERSION)', f'torch was replaced: {v}'; print('torch', v)"
	@$(BIN)/omni --help >/dev/null && echo "setup done: activate with '. $(BIN)/activate'"

test:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check omni audio_tokenizer decoders serve tests

clean-venv:
	rm -rf $(VENV)
