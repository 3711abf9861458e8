# dynnas: one once-for-all supernet, searched per device.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SEED    ?= 0

.PHONY: setup test demo lint train-default clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test ! -L $(VENV) || { echo "error: $(VENV) is a symlink to another checkout's venv; installing here would point its editable install at this checkout. Pass VENV=<a folder of its own>." >&2; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -x -q --timeout=600

lint: setup
	$(BIN)/ruff check nas reports supernet predictors hw_profiles tests benchmarks

demo: setup
	$(BIN)/dynnas search --device jetson-orin,raspberry-pi-5 --seed $(SEED) --top 3 --overwrite --out runs/demo

# Reproduces the shipped default supernet (see README: "The shipped default"): progressive shrinking,
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

clean:
	rm -rf runs .pytest_cache
