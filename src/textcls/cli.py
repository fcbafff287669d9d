"""The command line: parses, calls the Python API, prints. Nothing below this file reads flags."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from textcls import __version__
from textcls.errors import ConfigError, TextClsError

log = logging.getLogger("textcls")
BACKEND_HELP = "torch (default), torch-int8, onnx, onnx-int8 (the ONNX ones after 'textcls export')"


def _add_data_flags(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ("valid_fraction",)) -> None:
    """The data options (format, columns, header, bad lines, unseen labels), from DataConfig."""
    from textcls.options import add_arguments

    add_arguments(parser, ["data"], skip=skip)


def _train_parser(sub: Any) -> None:
    from textcls.options import add_arguments

    p = sub.add_parser(
        "train",
        help="train a model on a data directory or file",
        description="Train a classifier; writes the model directory to --out. Every option below is a "
        "field of the config saved in the model directory (config.json); --config FILE gives a whole "
        "config and --set PATH=VALUE any single field.",
    )
    p.add_argument("--data", required=True, help="directory with train.* [valid.* test.*] or a train file")
    p.add_argument("--valid", help="validation file (default: valid.* in --data, else a 10%% carve)")
    p.add_argument("--test", help="test file evaluated after training (default: test.* in --data)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument(
        "--model",
        default=None,
        help="preset: cnn (default), linear, fasttext, densenet-cnn, densenet-dsa, gnb, lstm, mean, "
        "minilm-l6, a local Hugging Face model directory, or auto (see below)",
    )
    p.add_argument(
        "--encoder", help="override the preset's encoder (transformers: cls, mean, cnn, densenet-cnn)"
    )
    p.add_argument("--vectors", help="glove-6b-50d (default), spacy-md-300d, random, or a vectors file")
    p.add_argument("--config", help="YAML/JSON config file; flags override it")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    auto = p.add_argument_group("--model auto (train the ladder cheapest first, keep the best that fits)")
    auto.add_argument("--time-budget", help="for the whole ladder: 90s, 10m, 1h or seconds (default 10m)")
    auto.add_argument("--max-latency-ms", type=float, help="batch-1 p50 limit on the backend it serves with")
    auto.add_argument("--max-size-mb", type=float, help="size limit of what that backend loads")
    auto.add_argument(
        "--pick",
        choices=["cheapest", "best"],
        help="cheapest (default): the cheapest candidate the best one does not beat beyond validation "
        "noise (paired randomization test, 5 %%); best: the best validation metric, however small its lead",
    )
    add_arguments(p)


def _int_list(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{value}'") from None


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a model directory on a labelled file",
        description="Metrics, per-class report, confusion matrix, predictions and latency; "
        "written to MODEL/eval/<file stem>/ unless --out is given.",
    )
    p.add_argument("model_dir")
    p.add_argument("--data", required=True, help="labelled file")
    p.add_argument("--out", help="report directory (default: MODEL/eval/<file stem>)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="intra-op threads")
    p.add_argument("--backend", default="torch", help=BACKEND_HELP)
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument(
        "--threshold",
        type=float,
        help="evaluate with this threshold instead of the model's (multi-label: every label's; one "
        "label per text: the abstention's)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_data_flags(p)


def _predict_parser(sub: Any) -> None:
    from textcls.inference.stream import DEFAULT_CHUNK

    p = sub.add_parser(
        "predict",
        help="predict labels for texts",
        description="Texts as arguments, '-' for one text per line on stdin, --file, or --interactive. "
        "stdin and --file stream: read, predicted and written in chunks, one answer per input line "
        "in order, blank lines included, whatever the size of the input.",
    )
    p.add_argument("model_dir")
    p.add_argument("texts", nargs="*", help="texts to classify; '-' reads lines from stdin")
    p.add_argument(
        "--file",
        help="file with one text per line (a model with --fields: one JSON object per line with the "
        'field names, e.g. {"title": "...", "body": "..."})',
    )
    p.add_argument(
        "--field",
        action="append",
        metavar="NAME=TEXT",
        help="one field of one input, for a model trained with --fields: --field title=... --field body=...",
    )
    p.add_argument("--interactive", "-i", action="store_true", help="read texts at a prompt")
    p.add_argument(
        "--top-k",
        type=int,
        help="labels shown per text (default 1; multi-label: every label above its threshold)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="replace the model's thresholds: multi-label, the score each label needs; one label per "
        "text, the top score below which it answers out of scope",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="intra-op threads")
    p.add_argument("--backend", default="torch", help=BACKEND_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--out",
        help="write the answers to this file, one JSON object per line, instead of stdout; "
        "--file and '-' stream through in chunks (constant memory, input order kept)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue --out where an interrupted run stopped (back to its last whole chunk: give the same "
        "--chunk-size and the answers are those of an uninterrupted run)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK,
        help=f"lines read, predicted and written at a time when streaming (default {DEFAULT_CHUNK})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _export_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a model directory to ONNX (optionally int8), checked against PyTorch",
        description="Writes model.onnx (and with --quantize int8 model.int8.onnx) into the model "
        "directory, plus export.json. The ONNX graph is checked against PyTorch on real inputs "
        "(validation texts); the int8 model must keep its validation accuracy within --max-drop points.",
    )
    p.add_argument("model_dir")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    p.add_argument("--quantize", choices=["int8"], help="also write a dynamically quantized int8 model")
    p.add_argument(
        "--valid", help="validation file for the check and the gate (default: the split used in training)"
    )
    p.add_argument(
        "--max-drop", type=float, default=1.0, help="accuracy points int8 may lose on valid (default 1.0)"
    )
    p.add_argument("--force", action="store_true", help="keep an int8 model that fails the gate")
    p.add_argument("--no-optimize", action="store_true", help="skip the transformer graph fusion")
    p.add_argument(
        "--tolerance", type=float, default=1e-3, help="max abs logit difference vs PyTorch (default 1e-3)"
    )
    p.add_argument("--threads", type=int, help="intra-op threads")
    p.add_argument("--json", action="store_true", help="print export.json")


def _bench_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="accuracy, latency, throughput and size of models × backends on a data file",
        description="For each model directory × backend × thread count: accuracy, macro-F1, p50/p95 ms "
        "at batch 1, examples/s at batch 64, load time, size. Writes --out (Markdown), the same "
        "name with .json, and a .png of accuracy vs latency with the Pareto front.",
    )
    p.add_argument("model_dirs", nargs="+")
    p.add_argument("--data", required=True, help="labelled file")
    p.add_argument(
        "--backends",
        default="torch,torch-int8,onnx,onnx-int8",
        help="comma list (default: torch,torch-int8,onnx,onnx-int8)",
    )
    p.add_argument(
        "--threads",
        type=_int_list,
        default=None,
        help="comma list of thread counts, e.g. 1,2 (default: all cores)",
    )
    p.add_argument("--out", default="bench.md", help="Markdown report (default: bench.md)")
    p.add_argument(
        "--export",
        action="store_true",
        help="export models whose ONNX file is missing or stale (other weights) first (int8 gated)",
    )
    _add_data_flags(p)


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve models over HTTP (TorchServe-compatible API, dynamic batching, web page)",
        description="Serve model directories with FastAPI + uvicorn: POST /predictions/NAME, GET /ping, "
        "management under /models (bearer token), GET /metrics, GET /docs, and a web page at /. "
        "Every request's Host must name this server (see --allowed-hosts); management requests from "
        "other web pages (Origin, Sec-Fetch-Site) are refused, and a browser may change models only "
        "when a token is set. Malformed or oversized requests get a JSON 4xx {code, type, message}.",
    )
    p.add_argument(
        "models", nargs="*", help="model directories, or NAME=DIR (the name defaults to the dir name)"
    )
    p.add_argument("--backend", default="torch", help=BACKEND_HELP)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, loopback: the Host header may then be it, localhost, "
        "127.0.0.1 or [::1]; 0.0.0.0 or :: accept any Host unless --allowed-hosts is given)",
    )
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--allowed-hosts",
        action="append",
        default=[],
        metavar="HOSTS",
        help="comma list of Host names accepted besides the bound address, e.g. models.example.com,"
        "*.internal ('*' = any); with --host 0.0.0.0 / :: the only ones accepted (repeatable)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGINS",
        help="comma list of other web origins (scheme://host[:port]) allowed to call the server from a "
        "browser: CORS reads, and management (with the token); '*' = any origin, inference only "
        "(repeatable; default: none, only the page at / itself)",
    )
    p.add_argument("--workers", type=int, default=1, help="processes (more than 1 turns management off)")
    p.add_argument("--threads", type=int, help="intra-op threads per model")
    p.add_argument(
        "--model-store",
        default=".",
        help="POST /models registers directories under this root only (default: .)",
    )
    p.add_argument(
        "--token",
        default=None,
        help="bearer token for management (default: $TEXTCLS_TOKEN); required off loopback, and for "
        "changing models from a browser",
    )
    p.add_argument(
        "--no-management", action="store_true", help="management off: the /models routes answer 403"
    )
    p.add_argument(
        "--max-models",
        type=int,
        default=16,
        help="models served at once; POST /models beyond it answers 409 (default 16)",
    )
    p.add_argument("--max-batch-size", type=int, default=32, help="texts per predictor call (default 32)")
    p.add_argument(
        "--max-delay-ms", type=float, default=5.0, help="how long a batch waits to fill (default 5)"
    )
    p.add_argument("--no-batching", action="store_true", help="run requests one at a time")
    p.add_argument(
        "--max-body-kb",
        type=int,
        default=1024,
        help="request body limit, with or without Content-Length (default 1024 KiB; over it: 413)",
    )
    p.add_argument("--max-texts", type=int, default=256, help="texts per request (default 256; over: 413)")
    p.add_argument(
        "--max-text-chars", type=int, default=20000, help="characters per text (default 20000; over: 413)"
    )
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=30,
        help="on SIGTERM / Ctrl-C, seconds for requests in flight to be answered before they are "
        "cancelled and the process exits (default 30)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request (off: faster)")


def _search_parser(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help="hyper-parameter search with Optuna (resumable, several workers can share a study)",
        description="Optuna study over a YAML search space (configs/search/*.yaml): TPE with a seed, "
        "median or Hyperband pruning on each epoch's validation metric. The study lives in --storage "
        "(default: sqlite:///OUT/search.db); run the same command again to resume, or on other machines "
        "with a shared database URL to add workers. The best trial's model is kept in --out, with "
        "OUT/search/ (trials.md, trials.json, history.png, importances.png).",
    )
    p.add_argument("--data", required=True, help="data directory or train file (validation as in train)")
    p.add_argument("--space", required=True, help="YAML search space")
    p.add_argument("--model", help="preset as in train (default cnn)")
    p.add_argument("--config", help="base config file; the space overrides it")
    p.add_argument("--trials", type=int, default=20, help="trials in the study, all workers together (20)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--storage", help="Optuna storage URL, e.g. sqlite:///runs/search.db or postgresql://...")
    p.add_argument("--study", default="textcls", help="study name (default textcls)")
    p.add_argument("--metric", choices=["accuracy", "macro_f1", "loss"], help="metric to optimize")
    p.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    p.add_argument("--seed", type=int, default=42, help="sampler seed (default 42)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the config's)")
    p.add_argument("--out", required=True, help="directory for the best model and the report")
    p.add_argument("--track", choices=["mlflow"], help="log each trial as a nested MLflow run")
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: sqlite:///<parent of --out>/mlflow.db)"
    )
    p.add_argument("--progress", action="store_true", help="progress bars for each trial")
    _add_data_flags(p, skip=())


def _augment_parser(sub: Any) -> None:
    p = sub.add_parser(
        "augment",
        help="augment a labelled file for distillation (masking, POS swaps, neighbours, n-grams)",
        description="Tang et al. (2019) augmentation: per sentence, --n-per-example samples where each "
        "token is masked (--p-mask), else swapped for a same-POS word (--p-pos), else for a word-vector "
        "neighbour (--p-neighbor); then an n-gram is masked (--p-ng); at most half the tokens change. "
        "Writes the originals and the new samples, one per line (text, or text<TAB>label with "
        "--preserve-label).",
    )
    p.add_argument("file", help="labelled training file")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--n-per-example", type=int, default=10)
    p.add_argument("--p-mask", type=float, default=0.1)
    p.add_argument("--p-pos", type=float, default=0.1)
    p.add_argument("--p-neighbor", type=float, default=0.1)
    p.add_argument("--p-ng", type=float, default=0.25)
    p.add_argument("--max-ngram", type=int, default=3)
    p.add_argument("--mask-token", default="[MASK]")
    p.add_argument("--lang", choices=["en", "ko"], default="en", help="en: spaCy tagger + GloVe; ko: Kiwi")
    p.add_argument("--preserve-label", action="store_true", help="samples keep the source label")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--no-progress", action="store_true")
    _add_data_flags(p, skip=("valid_fraction", "strict_labels"))


def _distill_parser(sub: Any) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a teacher model into a student (word model or smaller transformer)",
        description="The teacher scores train + --unlabeled once (soft targets kept in OUT or "
        "--soft-targets); the student trains on alpha*T^2*KL(teacher||student) + (1-alpha)*CE(gold) "
        "(or --loss mse). The report compares teacher, student alone and distilled student on the "
        "test split.",
    )
    p.add_argument("--teacher", required=True, help="teacher model directory")
    p.add_argument("--teacher-backend", default="torch", help=BACKEND_HELP)
    p.add_argument("--data", required=True, help="data directory (train, valid, test)")
    p.add_argument("--unlabeled", help="augmented texts (textcls augment)")
    p.add_argument("--student", help="student preset (cnn, densenet-cnn, minilm-l6, ...)")
    p.add_argument("--student-config", help="student config file (YAML/JSON)")
    p.add_argument("--out", required=True)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the soft loss (default 0.5)")
    p.add_argument("--loss", choices=["kl", "mse"], default="kl")
    p.add_argument("--max-entropy", type=float, help="drop unlabeled texts the teacher is unsure of (nats)")
    p.add_argument(
        "--soft-targets",
        metavar="DIR",
        help="keep the teacher's soft targets here (default --out); students of one teacher can share it",
    )
    p.add_argument("--no-baseline", action="store_true", help="do not train the student alone")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--remove-layers", type=_int_list, help="transformer students: layers to drop")
    p.add_argument("--threads", type=int)
    p.add_argument("--no-progress", action="store_true")
    _add_data_flags(p)


def _prune_parser(sub: Any) -> None:
    from textcls.compress.prune import DEFAULT_PARAMS, KINDS, METHODS

    p = sub.add_parser(
        "prune",
        help="prune a model: lottery tickets and magnitude pruning (any model), or attention heads "
        "and FFN neurons (transformers)",
        description="Unstructured (default): prune --rate of the surviving weights a round until "
        "--sparsity, retraining after each round with the masks held; per method the survivors are "
        "rewound to init (ticket; train with --save-init), to an early point (late; train with "
        "--rewind-at epoch:1), re-drawn at random (random), or kept (finetune); oneshot prunes each "
        "level at once. OUT/METHOD holds each method's last round (plain weights, zeros included); "
        "OUT/prune.json, prune.md and prune.png report every round. Zeros do not make dense CPU "
        "kernels faster. Structured (transformers; --heads-per-layer, --ffn-dim, --heads-fraction, "
        "--ffn-fraction): heads and FFN neurons scored on a held-out part of train, removed from the "
        "matrices, then fine-tuned; OUT is the pruned model directory.",
    )
    p.add_argument("model_dir", metavar="DIR", help="trained model directory")
    p.add_argument("--out", required=True, help="where the pruned model(s) and the report go")
    p.add_argument("--data", help="data directory or training file (default: what DIR was trained on)")
    p.add_argument("--valid", help="validation file")
    p.add_argument("--test", help="test file (measured every round when given or found)")
    p.add_argument(
        "--methods",
        type=_str_list,
        help=f"comma list of: {', '.join(METHODS)} (default ticket)",
    )
    p.add_argument("--sparsity", type=float, help="target share of zero weights (default 0.8)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--rate", type=float, help="share of the surviving weights pruned a round (default 0.2)"
    )
    group.add_argument("--rounds", type=int, help="instead of --rate: this many equal rounds to --sparsity")
    p.add_argument("--scores", choices=["magnitude", "random"], help="(default magnitude)")
    p.add_argument(
        "--scope", choices=["global", "local"], help="one threshold, or per layer (default global)"
    )
    p.add_argument(
        "--params",
        type=_str_list,
        help=f"weights pruned, comma list of: {', '.join(KINDS)} (default {','.join(DEFAULT_PARAMS)}; "
        "classifier: what training added over a transformer, its task head or our encoder and head, "
        "otherwise left dense)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="retraining epochs a round (default: the model's own training setting); structured: "
        "fine-tuning epochs (default 2; 0: none)",
    )
    p.add_argument(
        "--track",
        choices=["tensorboard", "mlflow", "none"],
        help="where every round's metrics (structured: the fine-tuning and the report's accuracy, "
        "parameters and latency) go (default: the model's own training setting)",
    )
    p.add_argument(
        "--tracking-uri",
        help="with MLflow tracking: the tracking URI (default: the model's own setting, else "
        "sqlite:///<parent of --out>/mlflow.db)",
    )
    p.add_argument("--experiment", help="with MLflow tracking: the experiment (default: the model's own)")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    structured = p.add_argument_group("structured (transformers)")
    structured.add_argument("--heads-per-layer", type=int, help="attention heads kept in every layer")
    structured.add_argument("--ffn-dim", type=int, help="feed-forward neurons kept in every layer")
    structured.add_argument("--heads-fraction", type=float, help="share of all heads removed (global)")
    structured.add_argument("--ffn-fraction", type=float, help="share of all FFN neurons removed (global)")
    structured.add_argument(
        "--score-fraction", type=float, help="share of train held out to score (default 0.1)"
    )
    structured.add_argument(
        "--distill", action="store_true", help="fine-tune distilling from the unpruned model"
    )
    p.add_argument("--no-progress", action="store_true")


def _pretrain_parser(sub: Any) -> None:
    from textcls.config import BiLMConfig, PretrainConfig
    from textcls.options import add_model_fields

    p = sub.add_parser(
        "pretrain",
        help="pretrain on unlabeled text: masked LM for a transformer, or a biLM for word models",
        description="Continue masked-LM pretraining of minilm-l6 or a local Hugging Face encoder (the "
        "output is a backbone directory for 'textcls train --model DIR'), or pretrain an ELMo-style "
        "bidirectional LM with --model bilm (for 'textcls train --embedder bilm:DIR --model cnn'). "
        "Reports loss, perplexity and masked- or next-token accuracy to TensorBoard or MLflow, and "
        "writes pretrain.json, pretrain.md and pretrain_curves.png.",
    )
    p.add_argument("--data", required=True, nargs="+", help="text files: one text a line, or labelled files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--format", default="auto", help="input format of the files (default: detected)")
    p.add_argument("--text-column", action="append", dest="text_columns", help="CSV/JSONL text column")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="any setting by its dotted path, e.g. --set bilm.char_filters='[[1,32],[2,64]]'",
    )
    add_model_fields(p, PretrainConfig, "pretraining", skip=("tokenizer", "bilm"))
    add_model_fields(
        p,
        BiLMConfig,
        "the biLM (--model bilm)",
        prefix="bilm.",
        rename={"dropout": "bilm-dropout", "vectors": None, "char_filters": None},
    )
    p.add_argument(
        "--tokenizer",
        dest="set_tokenizer_engine",
        choices=["regex", "kiwi"],
        help="the biLM's word tokenizer: regex (default) or kiwi (Korean morphemes)",
    )


def _str_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textcls", description="Text classification toolkit.")
    parser.add_argument("--version", action="version", version=f"textcls {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _evaluate_parser(sub)
    _predict_parser(sub)
    _export_parser(sub)
    _bench_parser(sub)
    _serve_parser(sub)
    _search_parser(sub)
    _augment_parser(sub)
    _distill_parser(sub)
    _prune_parser(sub)
    _pretrain_parser(sub)
    _verify_parser(sub)
    return parser


def _verify_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check a model directory: every file against its manifest, golden inputs per backend",
        description="Checks each file of a model directory against manifest.json (size and sha256, "
        "written by save), then runs the golden inputs saved with it on each backend and compares "
        "their scores with the saved ones within the backend's tolerance. Exit status 0: intact; "
        "2: a changed, truncated or missing file, or answers that differ (the message names it).",
    )
    p.add_argument("model_dir")
    p.add_argument(
        "--backend",
        action="append",
        help="backend to run the golden inputs on (repeatable; default torch, plus each exported "
        "ONNX backend recorded in export.json)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_verify(args: argparse.Namespace) -> int:
    from textcls.inference.onnx import read_export_record
    from textcls.integrity import verify_directory

    backends = args.backend or ["torch"] + [
        name for name in ("onnx", "onnx-int8") if name in read_export_record(args.model_dir)
    ]
    report = verify_directory(args.model_dir, backends)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.model_dir}: {report['files']} files match manifest.json")
    for backend, golden in report["backends"].items():
        print(
            f"  {backend}: {golden['inputs']} golden inputs, max probability difference "
            f"{golden['max_abs_diff']:.1e} (tolerance {golden['tolerance']:g})"
        )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from textcls.api import TextClassifier
    from textcls.options import from_args

    if args.model == "auto":
        return _train_auto(args)
    auto_only = {
        "--time-budget": args.time_budget,
        "--max-latency-ms": args.max_latency_ms,
        "--max-size-mb": args.max_size_mb,
        "--pick": args.pick,
    }
    if any(value is not None for value in auto_only.values()):
        given = ", ".join(flag for flag, value in auto_only.items() if value is not None)
        raise TextClsError(f"{given}: only with --model auto")
    classifier = TextClassifier(
        model=args.model, encoder=args.encoder, vectors=args.vectors, config=args.config, **from_args(args)
    )
    classifier.fit(args.data, args.valid, out_dir=args.out, resume=args.resume, progress=not args.no_progress)
    from textcls.training import is_main_process

    if not is_main_process():  # one of several training processes: the main one reports
        return 0
    result = classifier.train_result
    print(
        f"trained {classifier.config.model.encoder.name} in {result.seconds:.1f}s: best valid "
        f"{classifier.config.train.metric} {result.best_metric:.4f} at epoch {result.best_epoch}"
        f"{' (stopped early)' if result.stopped_early else ''}; saved to {args.out}"
    )
    test = args.test or _find_test(args.data)
    if test:
        report = classifier.evaluate(test, Path(args.out) / "eval" / Path(test).stem, latency=False)
        print(f"test ({test}): {headline(report)}")
    return 0


def headline(report: dict[str, Any]) -> str:
    """The headline figures of an evaluation report: accuracy and macro F1; a multi-label model's
    subset accuracy (so named) and micro F1; the out-of-scope measures when there are any."""
    if report.get("multi_label"):
        parts = [
            f"subset accuracy {report['subset_accuracy'] * 100:.2f}",
            f"micro F1 {report['micro_f1'] * 100:.2f}",
        ]
    else:
        parts = [f"accuracy {report['accuracy'] * 100:.2f}"]
    parts.append(f"macro F1 {report['macro_f1'] * 100:.2f}")
    oos = report.get("out_of_scope")
    if oos:
        if oos["in_scope_accuracy"] is not None:
            parts.append(f"in-scope accuracy {oos['in_scope_accuracy'] * 100:.2f}")
        parts.append(f"out-of-scope recall {oos['oos_recall'] * 100:.2f}, F1 {oos['oos_f1'] * 100:.2f}")
    return ", ".join(parts)


def _train_auto(args: argparse.Namespace) -> int:
    from textcls.auto import leaderboard_markdown, train_auto
    from textcls.options import from_args

    if args.encoder or args.vectors or args.config or args.resume:
        raise TextClsError(
            "--model auto chooses the model itself: drop --encoder, --vectors, --config, --resume"
        )
    try:
        board = train_auto(
            args.data,
            args.out,
            time_budget=args.time_budget or "10m",
            max_latency_ms=args.max_latency_ms,
            max_size_mb=args.max_size_mb,
            pick=args.pick or "cheapest",
            valid=args.valid,
            test=args.test,
            progress=not args.no_progress,
            **from_args(args),
        )
    finally:
        board_file = Path(args.out) / "auto.json"
        if board_file.is_file():
            print(leaderboard_markdown(json.loads(board_file.read_text(encoding="utf-8"))))
    print(f"auto: {board['winner']} (served on {board['backend']}) saved to {args.out}; leaderboard: auto.md")
    return 0


def _find_test(data: str) -> str | None:
    from textcls.data.splits import find_split_files

    if not Path(data).is_dir():
        return None
    test = find_split_files(data).get("test")
    return str(test) if test else None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from textcls.api import load
    from textcls.evaluation import report_markdown

    classifier = load(args.model_dir, backend=args.backend, threads=args.threads)
    _apply_data_flags(classifier, args)
    out = Path(args.out) if args.out else Path(args.model_dir) / "eval" / Path(args.data).stem
    report = classifier.evaluate(
        args.data, out, latency=not args.no_latency, batch_size=args.batch_size, threshold=args.threshold
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report_markdown(report))
        print(f"reports written to {out}/ (report.json, report.md, predictions.tsv, reliability.png)")
    return 0


def _apply_data_flags(classifier: Any, args: argparse.Namespace) -> None:
    from textcls.options import from_args

    classifier.configure(**from_args(args))


def cmd_predict(args: argparse.Namespace) -> int:
    from textcls.api import load
    from textcls.inference.stream import format_answer, predict_stream

    classifier = load(args.model_dir, backend=args.backend, threads=args.threads)
    if args.interactive:
        return _interactive(classifier, args)
    texts: list[Any] = list(args.texts)
    stream: Any = None  # one output row per input line, blank lines included, in order
    if texts == ["-"]:
        stream, texts = sys.stdin.buffer, []
    if args.file:
        if stream is not None:
            raise TextClsError("give '-' (stdin) or --file, not both")
        stream = args.file
    if args.field:
        texts.append(_field_arguments(args.field, classifier.predictor.fields))
    if not texts and stream is None:
        raise TextClsError("no texts: give texts as arguments, '-' for stdin, --file or --interactive")
    if texts and stream is not None:
        raise TextClsError("give texts as arguments (or --field) or a stream ('-', --file), not both")
    if args.resume and (args.out is None or stream is None):
        raise TextClsError("--resume continues the --out file of an earlier run over --file or '-'")
    as_json = args.json or args.out is not None
    options = {"top_k": args.top_k, "threshold": args.threshold, "batch_size": args.batch_size}
    if texts:  # arguments: a few texts, answered at once
        answers = classifier.predict(texts, **options)
        lines = "".join(format_answer(t, a, as_json) + "\n" for t, a in zip(texts, answers, strict=True))
        if args.out is None:
            sys.stdout.write(lines)
        else:
            Path(args.out).write_text(lines, encoding="utf-8")
        return 0
    result = predict_stream(
        classifier.predictor,
        stream,
        args.out,
        **options,
        chunk_size=args.chunk_size,
        as_json=as_json,
        resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if args.out is not None:
        resumed = f" (after {result.skipped:,} lines of the earlier run)" if result.skipped else ""
        rate = f"{result.texts_per_second:,.0f} texts/s"
        print(f"{result.written:,} answers{resumed} written to {args.out} ({rate})", file=sys.stderr)
    return 0


def _field_arguments(pairs: list[str], fields: list[str]) -> dict[str, str]:
    """``--field title=... --field body=...`` → one input."""
    if not fields:
        raise TextClsError("--field is for models trained with --fields; this one reads plain texts")
    record: dict[str, str] = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        if not sep:
            raise TextClsError(f"--field {item!r}: write NAME=TEXT, e.g. --field {fields[0]}=...")
        if name in record:
            raise TextClsError(f"--field {name} given twice")
        record[name] = value
    return record


def _interactive(classifier: Any, args: argparse.Namespace) -> int:
    from textcls.inference.stream import format_answer

    print(f"labels: {', '.join(classifier.labels)}; type a text, empty line or Ctrl-D to quit")
    fields = classifier.predictor.fields
    while True:
        try:
            if len(fields) > 1:  # one prompt per field; an empty first field quits
                text: Any = {}
                for name in fields:
                    text[name] = input(f"{name}> ").strip()
                    if not text[fields[0]]:
                        break
                if not text[fields[0]]:
                    break
            else:
                text = input("> ").strip()
        except EOFError:
            break
        if not text:
            break
        prediction = classifier.predict([text], top_k=args.top_k, threshold=args.threshold)[0]
        print(format_answer(text, prediction, args.json))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from textcls.inference.export import export_model

    record = export_model(
        args.model_dir,
        quantize=args.quantize,
        valid=args.valid,
        max_drop=args.max_drop,
        force=args.force,
        optimize=not args.no_optimize,
        tolerance=args.tolerance,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    onnx = record["onnx"]
    fused = onnx.get("fused")
    fusion = f", fused {fused}" if isinstance(fused, dict) else (f", fusion {fused}" if fused else "")
    print(
        f"{args.model_dir}/{onnx['file']}: {onnx['size_mb']:.2f} MB, max abs diff vs PyTorch "
        f"{onnx['max_abs_diff']:.2e}{fusion}"
    )
    if args.quantize:
        int8 = record["onnx-int8"]
        gate = int8["gate"]
        verdict = "passed" if gate["passed"] else "FAILED (kept: --force)"
        print(
            f"{args.model_dir}/{int8['file']}: {int8['size_mb']:.2f} MB, validation accuracy "
            f"{gate['int8_accuracy']:.2f} vs {gate['torch_accuracy']:.2f} PyTorch "
            f"(drop {gate['drop']:.2f}, max {gate['max_drop']:g}): gate {verdict}"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from textcls.inference.bench import markdown_table, run_bench
    from textcls.options import from_args

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    from textcls.registry import BACKENDS

    for backend in backends:
        BACKENDS.get(backend)  # unknown names fail before any work
    threads = args.threads or [None]
    rows = run_bench(
        args.model_dirs,
        args.data,
        backends=backends,
        threads=threads,
        out=args.out,
        export=args.export,
        **from_args(args),
    )
    print(markdown_table(rows))
    out = Path(args.out)
    print(f"written: {out}, {out.with_suffix('.json')}, {out.with_suffix('.png')}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from textcls.serve.app import ServeSettings, serve

    models = {}
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).resolve().name, item
        if name in models:
            raise TextClsError(f"two models are named '{name}': use NAME=DIR to name them apart")
        models[name] = path

    def comma_list(values: list[str]) -> list[str]:
        return [item.strip() for value in values for item in value.split(",") if item.strip()]

    settings = ServeSettings(
        models=models,
        backend=args.backend,
        threads=args.threads,
        host=args.host,
        model_store=args.model_store,
        token=args.token or os.environ.get("TEXTCLS_TOKEN") or None,
        management=not args.no_management,
        max_models=args.max_models,
        allowed_hosts=comma_list(args.allowed_hosts),
        allow_origins=comma_list(args.allow_origin),
        max_batch_size=1 if args.no_batching else args.max_batch_size,
        max_delay_ms=0 if args.no_batching else args.max_delay_ms,
        max_body_bytes=args.max_body_kb * 1024,
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
    )
    serve(
        settings,
        port=args.port,
        workers=args.workers,
        graceful_timeout=args.graceful_timeout,
        access_log=args.access_log,
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from textcls.options import from_args
    from textcls.search import run_search

    summary = run_search(
        args.data,
        space=args.space,
        model=args.model,
        config=args.config,
        trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        study=args.study,
        metric=args.metric,
        pruner=args.pruner,
        seed=args.seed,
        out=args.out,
        track=args.track,
        tracking_uri=args.tracking_uri,
        progress=args.progress,
        epochs=args.epochs,
        **from_args(args),
    )
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items())
    print(f"study {summary['study']} in {summary['storage']}: {summary['trials']} trials ({counts})")
    if summary["best_trial"] is None:
        print("no trial completed")
        return 1
    print(f"best trial {summary['best_trial']}: {summary['metric']} {summary['best_value']:.4f}")
    print(f"  params: {json.dumps(summary['best_params'])}")
    print(f"best model: {args.out}; report: {Path(args.out) / 'search' / 'trials.md'}")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from textcls.compress.augment import AugmentConfig, augment_file
    from textcls.options import from_args

    config = AugmentConfig(
        n_per_example=args.n_per_example,
        p_mask=args.p_mask,
        p_pos=args.p_pos,
        p_neighbor=args.p_neighbor,
        p_ng=args.p_ng,
        max_ngram=args.max_ngram,
        mask_token=args.mask_token,
        language=args.lang,
        seed=args.seed,
    )
    counts = augment_file(
        args.file,
        args.out,
        config,
        preserve_label=args.preserve_label,
        workers=args.workers,
        progress=not args.no_progress,
        **from_args(args),
    )
    print(f"{counts['sources']} sentences → {counts['written']} lines ({counts['new']} new) in {args.out}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from textcls.compress.distill import distill, report_markdown
    from textcls.options import from_args

    report = distill(
        args.teacher,
        args.data,
        args.out,
        student=args.student,
        student_config=args.student_config,
        unlabeled=args.unlabeled,
        temperature=args.temperature,
        alpha=args.alpha,
        loss=args.loss,
        teacher_backend=args.teacher_backend,
        max_entropy=args.max_entropy,
        soft_targets=args.soft_targets,
        baseline=not args.no_baseline,
        threads=args.threads,
        progress=not args.no_progress,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        remove_layers=args.remove_layers,
        **from_args(args),
    )
    print(report_markdown(report))
    print(f"distilled student saved to {args.out}; report: {Path(args.out) / 'distill_report.md'}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    training = {
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "tracking_uri": args.tracking_uri,
        "experiment": args.experiment,
    }
    training = {k: v for k, v in training.items() if v is not None}
    common = {"data": args.data, "valid": args.valid, "test": args.test, "track": args.track}
    common["progress"] = not args.no_progress
    structured = {
        "heads_per_layer": args.heads_per_layer,
        "ffn_dim": args.ffn_dim,
        "heads_fraction": args.heads_fraction,
        "ffn_fraction": args.ffn_fraction,
    }
    unstructured = {
        "--methods": args.methods,
        "--sparsity": args.sparsity,
        "--rate": args.rate,
        "--rounds": args.rounds,
        "--scores": args.scores,
        "--scope": args.scope,
        "--params": args.params,
    }
    structured_only = {"--score-fraction": args.score_fraction, "--distill": args.distill or None}
    if any(v is not None for v in structured.values()):
        given = [flag for flag, value in unstructured.items() if value is not None]
        if given:
            raise ConfigError(
                f"{', '.join(given)}: unstructured pruning options; structured pruning (--heads-per-layer, "
                "--ffn-dim, --heads-fraction, --ffn-fraction) does not use them"
            )
        from textcls.compress.structured import prune_structured

        epochs = training.pop("epochs", None)
        prune_structured(
            args.model_dir,
            args.out,
            **common,
            **structured,
            score_fraction=args.score_fraction if args.score_fraction is not None else 0.1,
            epochs=epochs,
            distill=args.distill,
            **training,
        )
    else:
        from textcls.compress.prune import DEFAULT_PARAMS, prune_model

        given = [flag for flag, value in structured_only.items() if value is not None]
        if given:
            raise ConfigError(
                f"{', '.join(given)}: structured pruning options; give --heads-per-layer or --ffn-dim"
            )
        prune_model(
            args.model_dir,
            args.out,
            **common,
            methods=args.methods or ["ticket"],
            target=args.sparsity if args.sparsity is not None else 0.8,
            rate=args.rate if args.rate is not None else (None if args.rounds else 0.2),
            rounds=args.rounds,
            scores=args.scores or "magnitude",
            scope=args.scope or "global",
            params=args.params or list(DEFAULT_PARAMS),
            **training,
        )
    report = Path(args.out) / "prune.md"
    if report.is_file():
        print(report.read_text(encoding="utf-8"))
    print(f"pruned model(s) in {args.out}; report: {report}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from textcls.options import model_field_values, parse_set
    from textcls.pretraining import REPORT_MD, pretrain

    settings = model_field_values(args)
    if args.set_tokenizer_engine:
        settings["tokenizer.engine"] = args.set_tokenizer_engine
    for item in args.set or []:
        path, value = parse_set(item)
        settings[path] = value
    model = settings.pop("model", None) or "minilm-l6"
    report = pretrain(
        args.data,
        args.out,
        model=model,
        resume=args.resume,
        progress=not args.no_progress,
        format=args.format,
        text_columns=args.text_columns,
        **settings,
    )
    print((Path(args.out) / REPORT_MD).read_text(encoding="utf-8").split("\n\n| step")[0])
    use = f"--embedder bilm:{args.out} --model cnn" if model == "bilm" else f"--model {args.out}"
    print(
        f"{report['status']}: saved to {args.out}; fine-tune it with: "
        f"textcls train --data DIR {use} --out MODEL"
    )
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "bench": cmd_bench,
    "serve": cmd_serve,
    "search": cmd_search,
    "augment": cmd_augment,
    "distill": cmd_distill,
    "prune": cmd_prune,
    "pretrain": cmd_pretrain,
    "verify": cmd_verify,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # predict's texts may follow options: `predict DIR --backend onnx "text"`
        if args.command != "predict" or any(item.startswith("-") and item != "-" for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.texts = [*args.texts, *extra]
    _setup_logging(args.verbose)
    try:
        code = COMMANDS[args.command](args)
    except TextClsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `textcls predict ... | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit flush goes nowhere
        return 141  # what a shell reports for a process ended by SIGPIPE
    except KeyboardInterrupt:
        hint = ""
        if args.command == "train":
            hint = (
                "; the last finished epoch (with --save-steps N: the last N-th step) is "
                f"checkpointed: add --resume to continue into {args.out}"
            )
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    from textcls.training import close_process_group

    close_process_group()
    return code


def _setup_logging(verbose: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    from textcls.training import is_main_process

    quiet = not is_main_process()  # several training processes: the others warn only
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, show_time=False, console=Console(stderr=True))],
    )
    for noisy in ("accelerate", "matplotlib", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
