"""One option, one place: CLI flags and API keywords derived from the config fields."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from textcls.api import build_config
from textcls.cli import build_parser
from textcls.config import ClassifierConfig
from textcls.errors import ConfigError
from textcls.options import as_update, from_args, keyword_paths, options

# the flags of the first half, each with a value and where it must land in the config
LEGACY_FLAGS = [
    (["--epochs", "4"], ("train", "epochs"), 4),
    (["--batch-size", "8"], ("train", "batch_size"), 8),
    (["--lr", "0.02"], ("train", "lr"), 0.02),
    (["--seed", "7"], ("train", "seed"), 7),
    (["--max-length", "64"], ("model", "tokenizer", "max_length"), 64),
    (["--metric", "macro_f1"], ("train", "metric"), "macro_f1"),
    (["--patience", "0"], ("train", "patience"), 0),
    (["--schedule", "cosine"], ("train", "schedule"), "cosine"),
    (["--warmup-ratio", "0.2"], ("train", "warmup_ratio"), 0.2),
    (["--weight-decay", "0.1"], ("train", "weight_decay"), 0.1),
    (["--grad-clip", "0"], ("train", "grad_clip"), 0.0),
    (["--class-weight", "balanced"], ("train", "class_weight"), "balanced"),
    (["--label-smoothing", "0.1"], ("train", "label_smoothing"), 0.1),
    (["--min-count", "2"], ("model", "embedding", "min_count"), 2),
    (["--freeze-vectors"], ("model", "embedding", "trainable"), False),
    (["--cpu"], ("train", "cpu"), True),
    (["--no-tensorboard"], ("train", "tensorboard"), False),
    (["--track", "mlflow"], ("train", "track"), "mlflow"),
    (["--tracking-uri", "sqlite:///x.db"], ("train", "tracking_uri"), "sqlite:///x.db"),
    (["--experiment", "e"], ("train", "experiment"), "e"),
    (["--log-model"], ("train", "log_model"), True),
    (["--format", "csv"], ("data", "format"), "csv"),
    (["--text-column", "title", "--text-column", "body"], ("data", "text_columns"), ["title", "body"]),
    (["--label-column", "y"], ("data", "label_column"), "y"),
    (["--pair"], ("data", "pair"), True),
]
TRANSFORMER_FLAGS = [
    (["--remove-layers", "4,5"], ("model", "backbone", "remove_layers"), [4, 5]),
    (["--freeze", "embeddings"], ("model", "backbone", "freeze"), "embeddings"),
    (["--backbone-lr", "1e-5"], ("train", "backbone_lr"), 1e-5),
    (["--grad-accum", "2"], ("train", "grad_accum"), 2),
    (["--mixed-precision", "bf16"], ("train", "mixed_precision"), "bf16"),
    (["--long-docs", "chunk"], ("model", "backbone", "long_docs"), "chunk"),
    (["--aggregate", "max"], ("model", "backbone", "aggregate"), "max"),
    (["--stride", "8"], ("model", "backbone", "stride"), 8),
    (["--max-chunks", "4"], ("model", "backbone", "max_chunks"), 4),
]


def config_from(argv: list[str], model: str = "cnn") -> ClassifierConfig:
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--model", model, *argv])
    return build_config(args.model, args.encoder, args.vectors, args.config, **from_args(args))


def value_at(config: ClassifierConfig, path: tuple[str, ...]) -> object:
    value: object = config
    for name in path:
        value = getattr(value, name)
    return value


@pytest.mark.parametrize(("argv", "path", "expected"), LEGACY_FLAGS)
def test_every_first_half_flag_still_works(argv, path, expected) -> None:
    assert value_at(config_from(argv), path) == expected


@pytest.mark.parametrize(("argv", "path", "expected"), TRANSFORMER_FLAGS)
def test_transformer_flags_still_work(argv, path, expected) -> None:
    assert value_at(config_from(argv, model="minilm-l6"), path) == expected


def _leaf_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    leaves = []
    for name, info in model.model_fields.items():
        nested = [a for a in (info.annotation, *typing.get_args(info.annotation)) if isinstance(a, type)]
        nested = [a for a in nested if issubclass(a, BaseModel)]
        leaves += _leaf_fields(nested[0], (*prefix, name)) if nested else [(*prefix, name)]
    return leaves


def test_every_config_field_is_an_option_or_deliberately_not() -> None:
    exposed = {option.path for option in options()}
    # given by their own arguments (--model, --encoder, --vectors) or set by training itself
    own = {
        ("version",),
        ("model", "backbone", "name_or_path"),
        ("model", "encoder", "name"),
        ("model", "embedding", "vectors"),
        ("model", "labels"),
        ("data", "detected_format"),
        ("model", "backbone", "pruned_heads"),  # written by textcls prune
        ("model", "backbone", "ffn_dims"),
        ("model", "decision", "temperature"),  # fitted on validation after training
        ("model", "decision", "bias"),
        ("model", "decision", "thresholds"),
        ("model", "decision", "global_threshold"),
        ("model", "decision", "confidence_map"),
    }
    # the biLM's architecture, copied from its directory by --embedder bilm:DIR
    own |= {path for path in _leaf_fields(ClassifierConfig) if path[:2] == ("model", "bilm")}
    assert set(_leaf_fields(ClassifierConfig)) == exposed | own
    flags = {action.dest for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert {option.dest for option in options()} <= flags  # each one reaches `textcls train`


def test_char_ngrams_take_a_range_auto_or_none_over_a_preset() -> None:
    path = ("model", "tokenizer", "char_ngrams")
    assert value_at(config_from([], model="fasttext"), path) == "auto"  # the preset's
    assert value_at(config_from(["--char-ngrams", "2,4"], model="fasttext"), path) == [2, 4]
    assert value_at(config_from(["--char-ngrams", "none"], model="linear"), path) is None
    assert value_at(config_from(["--char-ngrams", "auto"]), path) == "auto"
    assert value_at(config_from([]), path) is None  # the CNN's default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "d", "--out", "o", "--char-ngrams", "2,x"])


def test_each_option_flag_and_keyword_set_the_same_field() -> None:
    samples = {int: "3", float: "0.25", str: "x"}
    for option in options():
        annotation = typing.get_args(option.annotation) or (option.annotation,)
        if option.path[:2] == ("model", "backbone") or option.keyword in ("token_pattern", "tracking_uri"):
            continue  # transformer-only (above) or free text
        kind = next((a for a in annotation if a in samples), None)
        literal = [a for a in annotation if typing.get_origin(a) is typing.Literal]
        if typing.get_origin(option.annotation) is list and annotation == (str,):
            raw, value = "x,y", ["x", "y"]  # a comma list
        elif typing.get_origin(option.annotation) is typing.Literal or literal:
            choices = typing.get_args(literal[0] if literal else option.annotation)
            raw, value = str(choices[-1]), choices[-1]
        elif kind is not None and option.keyword not in ("epochs", "batch_size"):
            raw, value = samples[kind], kind(samples[kind])
        else:
            continue
        try:
            from_flag = value_at(config_from([option.flag, raw]), option.path)
        except (ConfigError, SystemExit):
            continue  # a bound refuses the sample: the same refusal for both spellings below
        assert from_flag == value
        from_keyword = value_at(build_config("cnn", **{option.keyword: value}), option.path)
        from_dotted = value_at(build_config("cnn", **{".".join(option.path): value}), option.path)
        assert from_flag == from_keyword == from_dotted, option.flag


def test_set_reaches_any_field_with_yaml_values() -> None:
    config = config_from(
        [
            "--set",
            "train.lr=1e-4",
            "--set",
            "model.encoder.params.kernel_sizes=[2, 4]",
            "--set",
            "data.header=null",
            "--set",
            "model.head_dropout=0.5",
        ]
    )
    assert config.train.lr == 1e-4
    assert config.model.encoder.params == {"kernel_sizes": [2, 4]}
    assert config.data.header is None and config.model.head_dropout == 0.5


def test_unknown_or_bad_options_say_what_exists() -> None:
    with pytest.raises(ConfigError, match=r"unknown config field 'train\.lrr'.*lr"):
        config_from(["--set", "train.lrr=1"])
    with pytest.raises(ConfigError, match="PATH=VALUE"):
        config_from(["--set", "train.lr"])
    with pytest.raises(ConfigError, match="unknown option 'epochz'"):
        build_config("cnn", epochz=3)
    with pytest.raises(ConfigError, match="invalid configuration"):
        config_from(["--lr", "-1"])  # the field's bound, not a CLI rule
    with pytest.raises(SystemExit):
        config_from(["--remove-layers", "a,b"])


def test_keywords_are_unique_and_name_their_path() -> None:
    paths = keyword_paths()
    assert len(paths) == len(options())
    assert paths["max_length"] == ("model", "tokenizer", "max_length")
    assert paths["trainable_vectors"] == ("model", "embedding", "trainable")
    assert as_update("max_chunks", 3) == {"model": {"backbone": {"max_chunks": 3}}}


def test_help_text_comes_from_the_field_descriptions(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in options():
        assert option.flag in text
        first_words = " ".join(option.description.split()[:3])
        assert first_words in text, option.flag
    from textcls.registry import TRANSFORMER_TRAIN_DEFAULTS

    assert f"default 10; transformer presets: {TRANSFORMER_TRAIN_DEFAULTS['epochs']}" in text  # --epochs
