# genlab: `make demo` trains the MNIST VAE and writes its pictures to its run folder; `make test` runs the tests.
# The first target that needs it creates .venv and installs genlab there.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PyTorch pair that imports on this kind of machine; override for another build, e.g.
#   make install TORCH_SPEC="torch torchvision" TORCH_INDEX=<PyTorch's CPU or CUDA wheel index URL>
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
DEMO_EPOCHS ?= 10
DEMO_ROOT ?= runs/vae_mnist
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint clean

$(BIN)/genlab: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/genlab

# The pictures go to the run folder; reports/ changes only when a report's own command is run on purpose.
# Each `make demo` starts the demo run afresh (--overwrite_run): it is a recipe to watch, not a run to keep.
demo: install
	$(BIN)/genlab fit -c configs/vae_mnist.yaml --trainer.max_epochs $(DEMO_EPOCHS) \
		--trainer.default_root_dir $(DEMO_ROOT) --overwrite_run true $(DEMO_ARGS)
	$(BIN)/genlab vae-figures --ckpt $(DEMO_ROOT)/checkpoints/last.ckpt --out $(DEMO_ROOT)/figures
	@echo "make demo: pictures in $(DEMO_ROOT)/figures/ (latent_grid.png, latent_scatter.png, interpolation.png, ..., latent_explorer.html)"

# PASSIVE: idle OpenMP threads sleep instead of spinning, which keeps a shared 2-core machine usable
test: install
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests scripts

clean:
	rm -rf runs wandb lightning_logs .pytest_cache
