# dynnas: one once-for-all supernet, searched per device.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SEED    ?= 0

.PHONY: setup test demo lint docs results train-default train-vit-default train-vit-256 train-vit-256-corner clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test ! -L $(VENV) || { echo "error: $(VENV) is a symlink to another checkout's venv; installing here would point its editable install at this checkout. Pass VENV=<a folder of its own>." >&2; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Two workers (pytest-xdist, one per core; tests run torch on one thread), then the tests that time this
# machine (marker `timing`) alone: beside a busy worker their measurements would mean nothing.
test: setup
	$(BIN)/python -m pytest -x -q --timeout=900 -n 2 --dist loadscope -m "not timing"
	$(BIN)/python -m pytest -x -q --timeout=600 -m timing

lint: setup
	$(BIN)/ruff check nas reports supernet predictors hw_profiles tests benchmarks

demo: setup
	$(BIN)/dynnas search --device jetson-orin,raspberry-pi-5 --seed $(SEED) --top 2 --overwrite --out runs/demo

# The docs site (mkdocs, offline): regenerate the CLI reference from the typer app, then build strictly into
# site/ (a broken link fails).
docs: setup
	$(BIN)/python docs/gen_cli.py
	$(BIN)/mkdocs build --strict

# The README's results summary, regenerated from benchmarks/results/*.json.
results: setup
	$(BIN)/python benchmarks/results_summary.py

# Reproduces the shipped default supernet (see docs/concepts/shipped-supernets.md): progressive shrinking,
# then the exit heads with joint fine-tuning, then the predictor data (with two width-cascade scouts) and the
# evaluation sample.
CIFAR ?= ../shared/datasets/cifar10
train-default: setup
	$(BIN)/dynnas train --family cnn --dataset cifar10:$(CIFAR) \
	  --preset cifar-default --stage-epochs 4,2,2,2 --batch-size 128 --lr 0.1 --n-random 1 --seed 0 --out runs/cifar-default
	$(BIN)/dynnas train --family cnn --dataset cifar10:$(CIFAR) --preset cifar-default \
	  --init-from runs/cifar-default/supernet.safetensors --exit-epochs 4 --exit-route joint \
	  --batch-size 128 --lr 0.1 --n-random 1 --seed 0 --out runs/cifar-exits-joint
	$(BIN)/dynnas calibrate --supernet runs/cifar-exits-joint/supernet.safetensors --dataset cifar10:$(CIFAR) \
	  --samples 220 --ceiling 50 --recal-seeds 2 --sample-val 300 --cascade 2 --seed 0

# Reproduces the shipped ViT (see docs/concepts/shipped-supernets.md): width/head stages, the token-schedule stage and the
# exit stage in one run (28 epochs, 62 min on 2 otherwise idle cores), then its predictor data and evaluation
# sample (7 min). The same train command with --stop-at 22 --out runs/cifar-vit-ps writes the post-hoc supernet
# of benchmarks/token_reduction.py (the state after the width/head stages, before the token stage).
train-vit-default: setup
	$(BIN)/dynnas train --family vit --preset cifar-vit --dataset cifar10:$(CIFAR) --stage-epochs 16,2,2,2 \
	  --token-epochs 4 --exit-epochs 2 --exit-route joint --optimizer adamw --lr 1e-3 --weight-decay 0.05 \
	  --warmup-epochs 1 --n-random 1 --batch-size 128 --seed 0 --out runs/cifar-vit
	cp runs/cifar-vit/supernet.safetensors supernet/pretrained/cifar10-vit.safetensors
	$(BIN)/dynnas calibrate --supernet supernet/pretrained/cifar10-vit.safetensors --dataset cifar10:$(CIFAR) \
	  --samples 100 --ceiling 25 --recal-seeds 1 --sample-val 300 --seed 0

# The shipped ViT at 256 tokens (patch 1), fine-tuned from the shipped weights with a token stage, for
# benchmarks/token_reduction.py; not shipped (docs/concepts/shipped-supernets.md).
train-vit-256: setup
	$(BIN)/dynnas train --family vit --preset cifar-vit-256 --dataset cifar10:$(CIFAR) \
	  --init-from supernet/pretrained/cifar10-vit.safetensors --token-epochs 5 --optimizer adamw --lr 1e-3 \
	  --weight-decay 0.05 --n-random 1 --batch-size 128 --seed 0 --out runs/cifar-vit-256

# Continues train-vit-256 with 4 more token epochs that also train the largest width under the strongest
# reduction (--token-corner), the subnet benchmarks/token_reduction.py judges the speed-up on.
train-vit-256-corner: setup
	$(BIN)/dynnas train --family vit --preset cifar-vit-256 --dataset cifar10:$(CIFAR) \
	  --init-from runs/cifar-vit-256/supernet.safetensors --token-epochs 4 --token-corner --optimizer adamw \
	  --lr 5e-4 --weight-decay 0.05 --n-random 1 --batch-size 128 --seed 0 --out runs/cifar-vit-256-corner

clean:
	rm -rf runs .pytest_cache
