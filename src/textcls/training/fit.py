"""From examples and a config to a trained predictor: labels, vocabulary, vectors, model, loop."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import regex

from textcls.config import ClassifierConfig
from textcls.data.batching import (
    WordFeaturizer,
    describe_truncation,
    field_words,
    truncation_stats,
)
from textcls.data.formats import Example
from textcls.data.tokenizer import Vocab, length_stats, make_tokenizer
from textcls.errors import ConfigError

log = logging.getLogger(__name__)


def build_vocab_and_vectors(
    config: ClassifierConfig, token_lists: Sequence[Sequence[str]]
) -> tuple[Vocab, Any, dict[str, Any]]:
    """Vocabulary from training tokens (+ the most frequent pretrained words) and its matrix."""
    from textcls.embeddings.vectors import build_matrix, open_vectors

    embedding = config.model.embedding
    train_vocab = Vocab.build(token_lists, embedding.min_count)
    source = open_vectors(
        embedding.vectors, embedding.dim, needed=set(train_vocab.tokens), keep_first=embedding.extra_vocab
    )
    extra = source.frequent_words(embedding.extra_vocab) if embedding.extra_vocab else []
    vocab = Vocab.build(token_lists, embedding.min_count, extra=extra)
    matrix, _ = build_matrix(vocab.tokens, source, config.train.seed, embedding.oov_init)
    train_words = len(train_vocab) - 2
    _, found_train = source.lookup(train_vocab.tokens[2:])
    stats = {
        "vocab_size": len(vocab),
        "train_words": train_words,
        "train_words_with_vector": int(found_train.sum()),
        "vectors": embedding.vectors,
        "dim": int(matrix.shape[1]),
    }
    log.info(
        "vocabulary: %d words (%d from training, %.1f%% of them have a pretrained vector; "
        "%d extra pretrained words), %d-d vectors",
        len(vocab),
        train_words,
        100 * found_train.mean() if train_words else 0.0,
        len(vocab) - 2 - train_words,
        matrix.shape[1],
    )
    return vocab, matrix, stats


def adopt_bilm(config: ClassifierConfig) -> tuple[Any, dict[str, Any], Path] | None:
    """``--embedder bilm:DIR``: the model takes the biLM's architecture (``model.bilm``) and its
    tokenizer (``max_length`` stays the task's), so the words are the ones it was pretrained on.
    Returns (its vocabulary, its weights, DIR), or None without a biLM embedder."""
    embedder = config.model.embedding.embedder
    if not embedder:
        embedding = config.model.embedding
        if embedding.bilm_word_dim or embedding.bilm_word_init != "random":
            raise ConfigError(
                "--bilm-word-dim and --bilm-word-init join a biLM's mix: add --embedder bilm:DIR"
            )
        return None
    from textcls.embeddings.bilm import bilm_directory, load_bilm

    if config.model.backbone is not None:
        raise ConfigError("--embedder bilm:DIR is for word models; a transformer embeds its own tokens")
    directory = bilm_directory(embedder)
    bilm, tokenizer, vocab, state = load_bilm(directory)
    own = config.model.tokenizer
    if own.word_ngrams > 1 or own.char_ngrams or own.ngram_buckets or own.bag:
        raise ConfigError(
            "--embedder bilm reads words in order: no n-grams, buckets or bag (linear, fasttext)"
        )
    config.model.tokenizer = tokenizer.model_copy(update={"max_length": own.max_length})
    config.model.bilm = bilm
    embedding = config.model.embedding
    if embedding.bilm_word_init == "bilm":  # the joined embedding starts from the biLM's word rows
        if not bilm.word_dim:
            raise ConfigError(f"--bilm-word-init bilm: the biLM in {directory} has no word embeddings")
        if embedding.bilm_word_dim not in (0, bilm.word_dim):
            raise ConfigError(
                f"--bilm-word-init bilm copies the biLM's {bilm.word_dim}-d word embeddings: give "
                f"--bilm-word-dim {bilm.word_dim} or leave it out"
            )
        embedding.bilm_word_dim = bilm.word_dim
    log.info(
        "embedder: the biLM in %s (%d layers, %d-d mix, vocabulary %d; tokenizer %s%s), %s",
        directory,
        bilm.layers,
        2 * bilm.projection_dim,
        len(vocab),
        tokenizer.engine,
        ", character CNN" if bilm.char_cnn else "",
        "frozen" if config.model.embedding.freeze_bilm else "fine-tuned",
    )
    return vocab, state, directory


WORD_LENGTH_RANGE, TRANSFORMER_LENGTH_RANGE = (16, 1024), (32, 256)


def resolve_max_length(config: ClassifierConfig, lengths: Sequence[int], kind: str) -> int:
    """``max_length: auto`` → the 95th percentile of the training lengths, within the range of the
    model kind (word models see all of most texts; transformers stay affordable). Logged."""
    requested = config.model.tokenizer.max_length
    if requested != "auto":
        return int(requested)
    low, high = WORD_LENGTH_RANGE if kind == "word" else TRANSFORMER_LENGTH_RANGE
    p95 = int(np.ceil(np.percentile(lengths, 95))) if len(lengths) else low
    chosen = min(max(p95, low), high)
    log.info(
        "max_length auto: %d (the 95th percentile of training lengths is %d; %s range %d..%d)",
        chosen,
        p95,
        kind,
        low,
        high,
    )
    config.model.tokenizer.max_length = chosen
    return chosen


AUTO_CHAR_NGRAMS = [2, 3]
# scripts whose words carry particles and endings (Hangul) or are not split by spaces
UNSPACED_LETTERS = regex.compile(
    r"[\p{Hangul}\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]"
)


def resolve_char_ngrams(config: ClassifierConfig, words: Sequence[Sequence[str]]) -> None:
    """``char_ngrams: auto`` → :data:`AUTO_CHAR_NGRAMS` when at least half the letters of the
    training words (the first 5,000 texts' parts) are of :data:`UNSPACED_LETTERS`' scripts, else
    none; none with Kiwi's morphemes, where the particles are split off already. Logged."""
    if config.model.tokenizer.char_ngrams != "auto":
        return
    if config.model.tokenizer.engine == "kiwi":
        log.info("char_ngrams auto: none (Kiwi's morphemes split the particles and endings off)")
        config.model.tokenizer.char_ngrams = None
        return
    sample = "".join(word for part in words[:5000] for word in part)
    letters = len(regex.findall(r"\p{L}", sample))
    share = len(UNSPACED_LETTERS.findall(sample)) / max(1, letters)
    chosen = AUTO_CHAR_NGRAMS if share >= 0.5 else None
    log.info(
        "char_ngrams auto: %s (%.0f%% of the training letters are Hangul, Han, Kana or Southeast Asian)",
        f"{chosen[0]},{chosen[1]}" if chosen else "none",
        100 * share,
    )
    config.model.tokenizer.char_ngrams = chosen


def _build_word_model(
    config: ClassifierConfig, train_examples: Sequence[Example], bilm: tuple | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    from textcls.model import TextClassificationModel
    from textcls.registry import ENCODERS

    tokenizer = make_tokenizer(config.model.tokenizer)
    fields = config.data.fields
    # each text's words per part its encoder reads apart (one part, or one per field)
    train_parts = field_words(
        tokenizer, [e.as_input() for e in train_examples], fields, config.model.tokenizer.bag
    )
    train_words = [part for parts in train_parts for part in parts]
    # max_length caps each part: follow the longest part of each text (the body, not the title)
    longest = [max(len(words) for words in parts) for parts in train_parts]
    max_length = resolve_max_length(config, longest, "word")
    resolve_char_ngrams(config, train_words)
    stats = length_stats(longest, max_length)
    log.info(
        "training texts: %d%s, tokens mean %.1f / p95 %.0f / max %d; %d longer than max_length %d",
        len(train_parts),
        f" (fields {', '.join(fields)} read apart; lengths of the longer)" if len(train_parts[0]) > 1 else "",
        stats["mean"],
        stats["p95"],
        stats["max"],
        stats["truncated"],
        max_length,
    )
    options = config.model.tokenizer
    probe = WordFeaturizer(options, Vocab([]))  # the token strings the vocabulary is built from
    train_tokens = [
        [token for words in parts for token in words[:max_length] + probe.features(words[:max_length])]
        for parts in train_parts
    ]
    if options.ngram_buckets:  # hashed n-grams need no vocabulary entries
        train_tokens = [[w for words in parts for w in words[:max_length]] for parts in train_parts]
    reads_ids = getattr(ENCODERS.get(config.model.encoder.name), "reads_ids", False)
    if bilm is not None:  # the biLM's vocabulary, then the training words it lacks
        from textcls.embeddings.bilm import load_pretrained_into

        if reads_ids:
            raise ConfigError("--embedder bilm feeds an encoder of token embeddings, not linear")
        pretrained, state, directory = bilm
        own = Vocab.build(train_tokens, config.model.embedding.min_count)
        vocab = Vocab(pretrained.tokens + [t for t in own.tokens[2:] if t not in pretrained])
        model = TextClassificationModel(config.model, len(vocab), 0, fields=fields)
        rows = load_pretrained_into(model.embedder.bilm, state, vocab.tokens)
        if config.model.embedding.bilm_word_init == "bilm":  # words new to the biLM keep random rows
            import torch

            pretrained_words = state["token.words.weight"]
            with torch.no_grad():
                model.embedder.words.weight[1 : len(pretrained_words)] = pretrained_words[1:]
        words_in = sum(t in pretrained for t in own.tokens[2:])
        vocab_stats = {"vocab_size": len(vocab), "embedder": f"bilm:{directory}", **rows}
        vocab_stats["train_words_in_bilm"] = words_in
        log.info(
            "vocabulary: %d biLM tokens + %d training words it lacks (%.1f%% of the training words "
            "were pretrained)",
            rows["pretrained_rows"],
            rows["added_rows"],
            100 * words_in / max(1, len(own) - 2),
        )
    elif reads_ids:  # no word vectors
        vocab = Vocab.build(train_tokens, config.model.embedding.min_count)
        model = TextClassificationModel(config.model, len(vocab), 0, fields=fields)
        vocab_stats: dict[str, Any] = {"vocab_size": len(vocab), "vectors": None}
        log.info("vocabulary: %d tokens (words and n-grams)", len(vocab))
    else:
        vocab, matrix, vocab_stats = build_vocab_and_vectors(config, train_tokens)
        if options.ngram_buckets:  # fastText's initialisation for the n-gram rows
            rng = np.random.default_rng(config.train.seed)
            dim = matrix.shape[1]
            buckets = rng.uniform(-1 / dim, 1 / dim, (options.ngram_buckets, dim)).astype(np.float32)
            matrix = np.concatenate([matrix, buckets])
            vocab_stats["ngram_buckets"] = options.ngram_buckets
        model = TextClassificationModel(config.model, len(vocab), matrix.shape[1], matrix, fields=fields)
    featurizer: Any = WordFeaturizer(config.model.tokenizer, vocab, fields)
    cluster_stats = None
    if config.model.cluster_features:  # k-means of the training texts' sentence embeddings
        from textcls.embeddings.clusters import build_cluster_featurizer

        featurizer, cluster_stats = build_cluster_featurizer(
            featurizer, [e.as_input() for e in train_examples], config.model, config.train.seed
        )
    return (
        model,
        featurizer,
        {
            **({"clusters": cluster_stats} if cluster_stats else {}),
            "length_stats": stats,
            "max_length": max_length,
            "truncation": truncation_stats(
                [len(t) for t in train_words], [min(len(t), max_length) for t in train_words]
            ),
            "vocabulary": vocab_stats,
        },
    )


def _build_transformer(
    config: ClassifierConfig, train_examples: Sequence[Example]
) -> tuple[Any, Any, dict[str, Any]]:
    from textcls.embeddings.transformer import (
        TransformerFeaturizer,
        import_transformers,
        load_backbone,
        resolve_backbone,
    )
    from textcls.model import TextClassificationModel, uses_native_head

    backbone_config = config.model.backbone
    tokenizer = import_transformers().AutoTokenizer.from_pretrained(
        resolve_backbone(backbone_config.name_or_path)
    )
    if config.model.tokenizer.max_length == "auto":
        sample = [e.as_input() for e in train_examples[:5000]]
        if any(isinstance(t, tuple) for t in sample):
            ids = tokenizer([t[0] for t in sample], [t[1] for t in sample], truncation=False)["input_ids"]
        else:
            ids = tokenizer(sample, truncation=False)["input_ids"]
        lengths = [len(i) for i in ids]
        resolve_max_length(config, lengths, "transformer")
    featurizer = TransformerFeaturizer(
        tokenizer, config.model.tokenizer.max_length, backbone_config, config.data.fields
    )
    backbone = load_backbone(backbone_config, config.model.labels, uses_native_head(config.model))
    model = TextClassificationModel(config.model, backbone=backbone)
    inputs = [e.as_input() for e in train_examples]
    long_count = featurizer.count_long(inputs)
    truncation = featurizer.truncation(inputs)
    log.info(
        "training texts: %d, %d longer than max_length %d (long documents: %s%s); %s",
        len(train_examples),
        long_count,
        featurizer.max_length,
        backbone_config.long_docs,
        f", at most {backbone_config.max_chunks} chunks" if backbone_config.long_docs == "chunk" else "",
        describe_truncation(truncation),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("backbone %s: %d / %d parameters trainable", backbone_config.name_or_path, trainable, total)
    return (
        model,
        featurizer,
        {
            "longer_than_max_length": long_count,
            "truncation": truncation,
            "parameters": total,
            "trainable": trainable,
        },
    )


def fit(
    config: ClassifierConfig,
    train_examples: Sequence[Example],
    valid_examples: Sequence[Example],
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    notes: list[str] | None = None,
    data_source: dict[str, Any] | None = None,
    on_epoch: Any = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    soft_loss: Any = None,
    start: tuple[Any, Any] | None = None,
) -> tuple[Any, Any, ClassifierConfig]:
    """Build the model a config describes (or reload it to resume), train it, save it.

    ``data_source`` (where the data files were) is kept in ``train_result.json`` so later
    commands (the quantization accuracy gate) can find the validation split again.
    ``on_epoch(epoch, metrics)`` runs after every validation (search pruning); ``run_name`` and
    ``parent_run_id`` name and nest the MLflow run. ``soft_loss(logits, indices, gold)`` replaces
    cross-entropy (knowledge distillation); training examples without a label then count
    through it alone (their gold id is -1). ``start=(model, featurizer)`` trains that model (in
    place, any pruning masks held) instead of building one from the config (textcls prune
    retrains its pruned models this way); its labels must be the data's."""
    from textcls.decision import Decision, calibrate
    from textcls.inference.predictor import TorchPredictor, predict_logits
    from textcls.model import load_model, read_model_config, save_model
    from textcls.training import is_main_process
    from textcls.training.checkpoint import INIT_FILE, REWIND_FILE, find_checkpoint
    from textcls.training.loggers import make_logger, training_track
    from textcls.training.loop import CHECKPOINT_DIR, fit_closed_form, set_seed, train

    labels = sorted({label for e in train_examples for label in e.label_set})
    if len(labels) < 2:
        raise ConfigError(f"training data has only {len(labels)} label(s) {labels}; need two or more")
    config = config.model_copy(deep=True)
    config.model.labels = labels
    notes = list(notes or [])
    notes += resolve_decision(config, train_examples, valid_examples, soft_loss is not None)
    out_path = Path(out_dir) if out_dir is not None else None
    set_seed(config.train.seed)

    bilm = adopt_bilm(config) if start is None else None  # sets model.bilm and the tokenizer
    resuming = bool(resume and out_path and find_checkpoint(out_path / CHECKPOINT_DIR))
    main = is_main_process()  # one of several training processes writes; the others only train
    if out_path and not resuming and main:  # rewind points of a model trained here before are not this one's
        for stale in (INIT_FILE, REWIND_FILE):
            (out_path / stale).unlink(missing_ok=True)
    if start is not None:
        model, featurizer = start
        if list(model.config.labels) != labels:
            raise ConfigError(
                f"the model's labels {model.config.labels} are not the training data's {labels}"
            )
        extra = {"started_from": "a given model"}
    elif resuming:
        saved = read_model_config(out_path).model
        if config.model.tokenizer.max_length == "auto":  # resolved by the first run
            config.model.tokenizer.max_length = saved.tokenizer.max_length
        if config.model.tokenizer.char_ngrams == "auto":
            config.model.tokenizer.char_ngrams = saved.tokenizer.char_ngrams
        if saved.model_copy(update={"decision": config.model.decision}) != config.model:
            raise ConfigError(f"{out_path}: --resume with a different model config; use a new --out")
        # not verified: a crash may have come between two of its files; the checkpoint restores it
        model, featurizer, _ = load_model(out_path, verify=False)
        extra: dict[str, Any] = {"resumed": True}
    elif config.model.backbone is not None:
        model, featurizer, extra = _build_transformer(config, train_examples)
    else:
        model, featurizer, extra = _build_word_model(config, train_examples, bilm)

    label_index = {label: i for i, label in enumerate(labels)}
    unseen = sorted({label for e in valid_examples for label in e.label_set} - set(labels))
    label_index.update({label: len(labels) + i for i, label in enumerate(unseen)})  # always wrong
    multi_label = bool(config.model.multi_label)
    train_data = (
        featurizer.encode([e.as_input() for e in train_examples]),
        [gold_ids(e, label_index, multi_label) for e in train_examples],
    )
    valid_data = (
        featurizer.encode([e.as_input() for e in valid_examples]),
        [gold_ids(e, label_index, multi_label) for e in valid_examples],
    )

    golden = [e.as_input() for e in valid_examples[:4]]  # answers the saved directory pins
    if out_path and not resuming and main:  # vocabulary and config on disk before any checkpoint
        save_model(out_path, model, featurizer, config, golden)
    track = training_track(config.train) if main else "none"
    source = pretrained_from(config)
    if source:  # the pretraining run (textcls pretrain) this model starts from
        extra["pretrained"] = source
    tags = {"textcls.stage": "fine-tune"}
    if source and source.get("run_id"):
        tags["textcls.pretrain_run_id"] = source["run_id"]
        tags["textcls.pretrain_dir"] = source["directory"]
    logger = make_logger(
        track,
        out_path / "tensorboard" if out_path else None,
        tracking_uri=config.train.tracking_uri,
        experiment=config.train.experiment,
        run_name=run_name or (out_path.name if out_path else None),
        parent_run_id=parent_run_id,
        tags=tags,
    )
    logger.log_params(config.model_dump())
    on_best = (lambda m: save_model(out_path, m, featurizer, config, golden)) if out_path else None
    runner = fit_closed_form if hasattr(model.encoder, "fit_closed_form") else train
    try:
        result = runner(
            model,
            featurizer,
            train_data,
            valid_data,
            config.train,
            out_dir=out_path,
            resume=resuming,
            logger=logger,
            on_best=on_best,
            on_epoch=on_epoch,
            soft_loss=soft_loss,
            progress=progress,
        )
    except BaseException:  # interrupted, pruned or crashed: the run says so
        logger.close("KILLED")
        raise
    if not main:  # the main process calibrates, saves and reports
        logger.close()
        return TorchPredictor(model, featurizer, labels, decision=Decision(config.model)), result, config
    out_of_scope = np.asarray([config.model.decision.oos_label in e.label_set for e in valid_examples])
    valid_logits = predict_logits(model, featurizer, valid_data[0], 64, next(model.parameters()).device)
    calibration = calibrate(config.model, valid_logits, valid_data[1], out_of_scope)
    log.info(
        "calibration on validation: ECE %.4f -> %.4f%s",
        calibration["ece_before"],
        calibration["ece_after"],
        f", abstain below {calibration['abstain_below']:.4f}" if "abstain_below" in calibration else "",
    )
    result.extra = {
        **result.extra,
        "calibration": calibration,
        **extra,
        "train_examples": len(train_examples),
        "valid_examples": len(valid_examples),
        "empty_texts": {
            "train": sum(1 for e in train_examples if not e.text and not e.text_pair),
            "valid": sum(1 for e in valid_examples if not e.text and not e.text_pair),
        },
        "valid_unseen_labels": {
            label: sum(1 for e in valid_examples if label in e.label_set) for label in unseen
        },
        "notes": notes,
    }
    if data_source:
        result.extra["data"] = data_source
    if logger.run_ref:
        result.extra["tracking"] = logger.run_ref
    predictor = TorchPredictor(model, featurizer, labels, decision=Decision(config.model))
    if out_path:
        save_model(out_path, model, featurizer, config, golden)
        write_train_summary(out_path, result, config)
    logger.log_metrics(
        {
            f"best_valid_{config.train.metric}": result.best_metric,
            "best_epoch": result.best_epoch,
            "train_seconds": result.seconds,
        }
    )
    if out_path:
        for name in ("config.json", "train_result.json", "labels.json"):
            logger.log_artifact(out_path / name)
        if config.train.log_model:
            logger.log_artifact(out_path, "model")
    logger.close()
    return predictor, result, config


def gold_ids(example: Example, index: dict[str, int], multi_label: bool) -> Any:
    """An example's gold for the loop: its label id (-1: unlabeled), or for multi-label the tuple
    of its label ids."""
    if multi_label:
        return tuple(index[label] for label in example.label_set)
    return index[example.label] if example.label is not None else -1


def resolve_decision(
    config: ClassifierConfig,
    train_examples: Sequence[Example],
    valid_examples: Sequence[Example],
    distilling: bool = False,
) -> list[str]:
    """Settle ``multi_label`` (detected when unset) and check the decision options against the
    data before any training; clears the values the last training fitted. Returns notes."""
    from textcls.data.labels import is_multi_label

    model, notes = config.model, []
    several = sum(1 for e in train_examples if len(e.label_set) > 1)
    if model.multi_label is None:
        model.multi_label = is_multi_label(train_examples)
        if model.multi_label:
            notes.append(
                f"multi-label: {several} of {len(train_examples)} training examples carry several labels "
                "(detected; a sigmoid per label, thresholds tuned on validation)"
            )
            log.info("%s", notes[-1])
    elif not model.multi_label and several:
        raise ConfigError(
            f"{several} training examples carry several labels: train with --multi-label, or keep "
            "label fields whole without --label-sep"
        )
    decision = model.decision
    decision.temperature, decision.thresholds, decision.global_threshold = [], [], 0.5
    decision.confidence_map, decision.bias = [], []
    if decision.oos_target_recall is not None:
        decision.abstain_below = None  # fitted again on this run's validation logits
        if model.multi_label:
            raise ConfigError("--oos-target-recall is for one label per text, not multi-label")
        if not any(decision.oos_label in e.label_set for e in valid_examples):
            raise ConfigError(
                f"--oos-target-recall needs out-of-scope examples (label {decision.oos_label!r}, "
                "--oos-label) in the validation data; add some, or give a fixed --abstain-below"
            )
    elif decision.abstain_below is not None and model.multi_label:
        raise ConfigError("--abstain-below is for one label per text, not multi-label")
    if decision.top_label == "isotonic" and model.multi_label:
        raise ConfigError("--top-label isotonic is for one label per text (multi-label: one T per label)")
    if model.multi_label and distilling:
        raise ConfigError("distillation is for one label per text; multi-label models are trained directly")
    if decision.oos_label in model.labels:
        notes.append(f"out of scope: {decision.oos_label!r} is a trained class (--oos-label)")
    return notes


def pretrained_from(config: ClassifierConfig) -> dict[str, Any] | None:
    """What ``textcls pretrain`` recorded of the biLM embedder or the backbone directory this
    model starts from (None for anything else)."""
    from textcls.pretraining import pretrain_source

    embedder = config.model.embedding.embedder
    if embedder and config.model.backbone is None:
        return pretrain_source(embedder.removeprefix("bilm:"))
    backbone = config.model.backbone
    if backbone is not None and Path(backbone.name_or_path).expanduser().is_dir():
        return pretrain_source(backbone.name_or_path)
    return None


def write_train_summary(directory: Path, result: Any, config: ClassifierConfig) -> None:
    """``train_result.json``: validation history, best epoch, vocabulary and length statistics."""
    import json

    summary = {
        "best_metric": result.best_metric,
        "metric": config.train.metric,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 2),
        "optimizer_steps": result.steps,
        "history": result.history,
        **result.extra,
    }
    (directory / "train_result.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
