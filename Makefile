# Set-up and test commands; the README and .ci/run call exactly these.
#
#   make setup   create .venv, install torch first, then the project with torch held
#   make test    run the whole test suite, then the transformers-floor suite (test-floor)
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
# The oldest transformers pyproject.toml claims, installed apart (pip --target) and tested by `make test-floor`.
FLOOR := $(VENV)/floor
TRANSFORMERS_FLOOR := $(shell sed -n 's/.*"transformers>=\([0-9.]*\)".*/\1/p' pyproject.toml)
FLOOR_TESTS := tests/test_model_*.py tests/test_static_decode.py tests/test_generation_processor.py tests/test_bundle.py tests/test_lm_warmup.py \
	tests/test_text_tokenizer.py tests/test_tokenizer_encoder.py tests/test_tokenizer_model.py tests/test_align_*.py

.PHONY: setup test test-floor lint clean-venv

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
	@# Debian chromium for the serving browser test (tests/serve/test_browser.py; skipped without it).
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
			&& echo "installed chromium" || echo "note: could not install chromium; the browser test will be skipped"; \
		else \
			echo "note: chromium not found (apt-get install chromium); the browser test will be skipped"; \
		fi; \
	fi
	@ln -sf "$$($(BIN)/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" $(BIN)/ffmpeg
	@# 4. transformers at the floor pyproject.toml claims, beside (not in) the venv, for `make test-floor`.
	@test -f $(FLOOR)/transformers-$(TRANSFORMERS_FLOOR).dist-info/METADATA || { rm -rf $(FLOOR); \
		$(BIN)/python -m pip install --quiet --no-warn-conflicts -c $(CONSTRAINTS) --target $(FLOOR) "transformers==$(TRANSFORMERS_FLOOR)"; }
	@# 5. the install must not have replaced torch.
	@$(BIN)/python -c "import torch; v = torch.__version__; assert v.split('+')[0] == '$(TORCH_VERSION)', f'torch was replaced: {v}'; print('torch', v)"
	@$(BIN)/omni --help >/dev/null && echo "setup done: activate with '. $(BIN)/activate'"

test:
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@# the floor suite after a whole run only (not after a PYTEST_ARGS selection)
	@$(if $(PYTEST_ARGS),,$(MAKE) --no-print-directory test-floor)

# The model, generation, LM, tokenizer-encoder and DPO tests (about 2 min) against the oldest transformers we
# claim (FLOOR shadows the venv's copy through PYTHONPATH): a floor that stops working fails here, not on a
# user's machine.
test-floor:
	@PYTHONPATH=$(FLOOR) $(BIN)/python -c "import transformers as t; v = t.__version__; \
		assert v == '$(TRANSFORMERS_FLOOR)', f'expected transformers $(TRANSFORMERS_FLOOR) from $(FLOOR), got {v}'; \
		print('test-floor: transformers', v)"
	PYTHONPATH=$(FLOOR) $(BIN)/python -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)

lint:
	$(BIN)/ruff check omni audio_tokenizer decoders serve tests

clean-venv:
	rm -rf $(VENV)
