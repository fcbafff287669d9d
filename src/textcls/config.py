"""Typed configuration. Configs are data: saved in every model directory, enough to rebuild it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from textcls.errors import ConfigError

CONFIG_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(_Strict):
    """How to read the data files."""

    format: Literal["auto", "tsv", "tsv-label-first", "csv", "jsonl", "fasttext"] = Field(
        "auto", description="input format (default: detected)"
    )
    text_columns: list[str] | None = Field(
        None,
        description="CSV/JSONL (or headed TSV) text column(s), comma-separated; "
        "several are joined (title + body)",
        json_schema_extra={"cli": {"append": "text-column"}},
    )
    label_column: str | None = Field(None, description="CSV/JSONL label column (default: label)")
    label_sep: str | None = Field(
        None,
        description="the separator of several labels in one label field (joy,surprise; flight#airfare): "
        "the text carries each of them (multi-label). Default: detected in the training file (',', '#' "
        "or '|' when the parts are labels on their own, reported), ',' with --multi-label; JSON label "
        "lists and several __label__s need none",
    )
    fields: list[str] | None = Field(
        None,
        description="the named text fields the model reads, one or two, by column name (e.g. body, "
        "title or title,body; a headerless TSV names its columns with --text-columns): predict and "
        "serve then take them by name; two fields are a tokenizer pair for transformers (title "
        "first, kept whole) and are encoded apart and concatenated by word models",
    )
    pair: bool = Field(False, description="two text fields form a sentence pair")
    header: bool | None = Field(
        None, description="TSV: the first line names the columns (default: detected and reported)"
    )
    on_bad_lines: Literal["error", "warn", "skip"] = Field(
        "error", description="malformed lines: stop (error), or drop and count them (warn, skip)"
    )
    strict_labels: bool = Field(
        False, description="valid/test labels never seen in training are an error (default: counted wrong)"
    )
    valid_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="share of train carved as validation")
    detected_format: str | None = Field(
        None,
        description="set by training: the TSV layout found in the training file, reused for files "
        "read later with format auto that look alike",
        json_schema_extra={"cli": False},
    )

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [name.strip() for name in value]
        if not names or not all(names) or len(set(names)) != len(names) or len(names) > 2:
            raise ValueError(f"fields must be one or two distinct names, e.g. title,body; got {value}")
        return names


class TokenizerConfig(_Strict):
    """The word tokenizer: a regular expression (the ``regex`` module: ``\\w`` includes combining
    marks, ``\\X`` is a grapheme cluster) over Unicode-normalised, optionally lower-cased text."""

    lowercase: bool = Field(True, description="lower-case text before tokenizing")
    normalize: Literal["NFKC", "NFC", "none"] = Field(
        "NFKC", description="Unicode normalisation before tokenizing (NFD 'café' = composed 'café')"
    )
    # Words (inner hyphens kept; letters with their combining marks, as in Devanagari), English
    # clitics split as in the Penn Treebank and in GloVe's vocabulary ("doesn't" -> "does" "n't",
    # "it's" -> "it" "'s"), and every other grapheme cluster (a punctuation mark, an emoji with
    # its modifiers) as one token.
    pattern: str = Field(
        r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|\w+(?:-\w+)*|(?![\w\s])\X",
        description="the token pattern (Python 'regex' syntax)",
        json_schema_extra={"cli": {"flag": "token-pattern", "keyword": "token_pattern"}},
    )
    engine: Literal["regex", "kiwi"] = Field(
        "regex",
        description="regex: the token pattern; kiwi: Korean morphemes by kiwipiepy (pip install "
        "'textcls[korean]'), the pattern then unused",
        json_schema_extra={"cli": {"flag": "tokenizer", "keyword": "tokenizer_engine"}},
    )
    pos_tags: bool = Field(False, description="kiwi: each morpheme carries its part-of-speech tag (먹/VV)")
    stop_tags: list[str] = Field(
        default_factory=list,
        description="kiwi: drop morphemes whose tag starts with one of these, e.g. J,E (particles, "
        "endings; S would also drop Latin words, numbers and Hanja)",
    )
    kiwi_normalize_coda: bool = Field(
        False, description="kiwi: read a consonant split off a syllable as its coda (e.g. repeated ㅋ)"
    )
    max_length: int | Literal["auto"] = Field(
        "auto",
        description="tokens kept per text; auto: the 95th percentile of the training texts' lengths "
        "(word models: within 16..1024; transformers: within 32..256), reported and saved "
        "(default auto)",
    )
    word_ngrams: int = Field(
        1,
        ge=1,
        le=6,
        description="word n-grams up to N join the tokens (fastText -wordNgrams); 1: words only",
    )
    char_ngrams: list[int] | Literal["none", "auto"] | None = Field(
        None,
        description="character n-grams MIN,MAX inside word boundaries join the tokens, e.g. 2,5; auto: "
        "2,3 when most letters of the training words are Hangul, Han, Kana, Thai, Lao, Khmer or Myanmar "
        "(words there carry particles and endings, or are not split by spaces), none otherwise and with "
        "--tokenizer kiwi; "
        "resolved by training and saved (linear and fasttext presets: auto; none: no character n-grams)",
    )
    ngram_buckets: int = Field(
        0,
        ge=0,
        description="n-grams are hashed into this many rows after the vocabulary (fastText's -bucket); "
        "0: n-grams are vocabulary entries",
    )
    ngram_hash: Literal["string", "words"] = Field(
        "string",
        description="how a hashed word n-gram finds its row: crc32 of its text (string), or fastText's "
        "way (words: each word's crc32 combined, h = h * 116049371 + next; no n-gram strings are "
        "built, faster for long documents; on SST-2 it scored 80.5 against 82.9 for string, one run)",
    )
    bag: bool = Field(
        False, description="a bag of tokens: each distinct token once with its count (linear models)"
    )

    @field_validator("max_length")
    @classmethod
    def _check_max_length(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("max_length must be at least 1 or 'auto'")
        return value

    @field_validator("char_ngrams")
    @classmethod
    def _check_char_ngrams(cls, value: list[int] | str | None) -> list[int] | str | None:
        if value == "none":
            return None
        if value is not None and value != "auto" and not (len(value) == 2 and 1 <= value[0] <= value[1]):
            raise ValueError("char_ngrams must be MIN,MAX with 1 <= MIN <= MAX, e.g. 2,5, or auto")
        return value


class EmbeddingConfig(_Strict):
    """Word vectors: a registered name (glove-6b-50d, spacy-md-300d, random) or a file path."""

    vectors: str = Field("glove-6b-50d", json_schema_extra={"cli": False})  # --vectors
    dim: int | None = Field(
        None,
        ge=1,
        description="dimension of random vectors (others read it from the file)",
        json_schema_extra={"cli": {"flag": "vectors-dim", "keyword": "vectors_dim"}},
    )
    trainable: bool = Field(
        True,
        description="fine-tune the word vectors",
        json_schema_extra={
            "cli": {
                "flag": "trainable-vectors",
                "keyword": "trainable_vectors",
                "also": {"freeze-vectors": False},
            }
        },
    )
    min_count: int = Field(1, ge=1, description="minimum training count for a word to enter the vocabulary")
    # The N most frequent words of the vector file join the vocabulary even when unseen in
    # training, so words that first appear at prediction time still get their pretrained vector.
    extra_vocab: int = Field(
        20000, ge=0, description="most frequent pretrained words added to the vocabulary even if unseen"
    )
    sparse: bool = Field(
        False,
        description="sparse embedding gradients: a step updates only the rows its batch uses (large "
        "tables such as fastText's hashed n-grams; needs --optimizer sgd)",
        json_schema_extra={"cli": {"flag": "sparse-embeddings", "keyword": "sparse_embeddings"}},
    )
    oov_init: Literal["normal", "uniform"] = Field(
        "normal",
        description="rows of words without a pretrained vector: normal at the pretrained vectors' "
        "scale, or fastText's small uniform ±1/dim (the fasttext preset's: a language the vectors do "
        "not cover then starts from near-zero word vectors)",
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="dropout on the word embeddings (with --embedder bilm: on the scalar mix; ELMo used 0.5)",
        json_schema_extra={"cli": {"flag": "embedding-dropout", "keyword": "embedding_dropout"}},
    )
    embedder: str | None = Field(
        None,
        description="bilm:DIR: a bidirectional LM pretrained by 'textcls pretrain --model bilm' feeds "
        "the encoder the ELMo scalar mix of its layers (its tokenizer and vocabulary are used; "
        "--vectors is then unused). Default: the word vectors",
    )
    freeze_bilm: bool = Field(
        True,
        description="--embedder bilm: keep the biLM's weights fixed (ELMo's way); --no-freeze-bilm "
        "fine-tunes them with the encoder",
    )
    bilm_word_dim: int = Field(
        0,
        ge=0,
        description="--embedder bilm: join a trainable word embedding of this size (random) to the "
        "mix, as ELMo joins its vector to the task model's own token representation; 0: the mix alone",
    )
    bilm_word_init: Literal["random", "bilm"] = Field(
        "random",
        description="--bilm-word-dim: start the joined word embedding at random (normal, std 0.25) or "
        "from the biLM's own pretrained word embeddings (bilm; the size is then the biLM's word_dim)",
    )

    @field_validator("embedder")
    @classmethod
    def _check_embedder(cls, value: str | None) -> str | None:
        if value is None or (value.startswith("bilm:") and len(value) > 5):
            return value
        raise ValueError("embedder must be bilm:DIR (a directory written by textcls pretrain --model bilm)")


class BiLMConfig(_Strict):
    """The architecture of an ELMo-style bidirectional language model (Peters et al. 2018), sized for
    a CPU: token representation (word embeddings and optionally a character CNN with highway layers,
    projected), forward and backward LSTM stacks with a projection after every layer and residual
    connections between layers, one softmax shared by both directions. Set by textcls pretrain and
    copied into every model that uses it, enough to rebuild it."""

    word_dim: int = Field(128, ge=0, description="word embedding size (0: characters only)")
    vectors: str | None = Field(None, description="word vectors the embeddings started from")
    char_cnn: bool = Field(False, description="add a character (UTF-8 byte) CNN to each token")
    char_dim: int = Field(16, ge=1)
    char_filters: list[list[int]] = Field(
        default_factory=lambda: [[1, 32], [2, 32], [3, 64], [4, 128]],
        description="character CNN filters as [width, count] pairs",
    )
    max_chars: int = Field(20, ge=2, description="UTF-8 bytes per token the character CNN reads")
    highway_layers: int = Field(1, ge=0)
    projection_dim: int = Field(128, ge=1, description="size of the token representation and of each layer")
    hidden_size: int = Field(256, ge=1, description="LSTM cell size")
    layers: int = Field(2, ge=1, description="LSTM layers per direction")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    softmax: Literal["full", "adaptive"] = Field("adaptive")
    cutoffs: list[int] = Field(
        default_factory=list, description="adaptive softmax cluster boundaries (default: from the vocabulary)"
    )


class EncoderConfig(_Strict):
    """An encoder from the registry plus its own keyword parameters."""

    name: str = Field("cnn", json_schema_extra={"cli": False})  # --encoder
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the encoder's own parameters as JSON, e.g. '{\"num_filters\": 64}'",
        json_schema_extra={"cli": {"flag": "encoder-params", "keyword": "encoder_params"}},
    )


class BackboneConfig(_Strict):
    """A Hugging Face encoder (a registered name such as ``minilm-l6`` or a local directory)."""

    name_or_path: str = Field(json_schema_extra={"cli": False})  # --model
    remove_layers: list[int] = Field(
        default_factory=list, description="encoder layers dropped at load, e.g. 8,9,10,11"
    )
    freeze: str = Field("none", description="none | embeddings | all-but-last-N | feature-based")
    long_docs: Literal["truncate", "head-tail", "chunk"] = Field(
        "truncate", description="texts longer than --max-length: cut, keep head and tail, or split in chunks"
    )
    aggregate: Literal["mean", "max"] = Field("mean", description="how chunk logits combine (chunk mode)")
    stride: int = Field(64, ge=0, description="tokens shared by neighbouring chunks")
    max_chunks: int = Field(
        16, ge=1, description="chunks kept per document (chunk mode); cut documents are reported"
    )
    pruned_heads: dict[int, list[int]] = Field(
        default_factory=dict,
        description="set by textcls prune --heads-per-layer: the attention heads removed from each "
        "layer (original indices); the smaller matrices are rebuilt at load",
        json_schema_extra={"cli": False},
    )
    ffn_dims: list[int] = Field(
        default_factory=list,
        description="set by textcls prune --ffn-dim: each layer's feed-forward width after pruning "
        "(empty: the backbone's own)",
        json_schema_extra={"cli": False},
    )
    layer_mix: bool = Field(
        False,
        description="the mean / cnn / densenet-cnn heads read a learned scalar mix of every layer "
        "(the embeddings included) instead of the last layer only (not with cls)",
    )

    @field_validator("freeze")
    @classmethod
    def _check_freeze(cls, value: str) -> str:
        if value in ("none", "embeddings", "feature-based") or re.fullmatch(r"all-but-last-\d+", value):
            return value
        raise ValueError("freeze must be none, embeddings, all-but-last-N or feature-based")


class DecisionConfig(_Strict):
    """How scores become answers, applied alike by every backend, evaluate and the server: fitted on
    the validation split after training (temperature, thresholds, abstention) and saved here."""

    calibrate: bool = Field(
        True,
        description="fit temperature scaling on the validation logits (Guo et al. 2017: one T by NLL; "
        "multi-label: Platt scaling, a temperature and a bias per label), so scores are calibrated "
        "probabilities",
    )
    temperature: list[float] = Field(
        default_factory=list,
        description="set by training: T (one, or one per label); empty: 1",
        json_schema_extra={"cli": False},
    )
    bias: list[float] = Field(
        default_factory=list,
        description="set by training (multi-label): each label's bias after its temperature, "
        "sigmoid(z / T + b) (Platt scaling); empty: 0",
        json_schema_extra={"cli": False},
    )
    top_label: Literal["auto", "isotonic", "none"] = Field(
        "auto",
        description="after temperature scaling, map the top label's probability through an isotonic "
        "regression fitted on validation (top-label calibration; one label per text): auto keeps the map "
        "only when it lowers the top-label Brier score out of fold (5 folds; 500+ validation examples); "
        "isotonic always fits it; none: temperature only",
    )
    confidence_map: list[list[float]] = Field(
        default_factory=list,
        description="set by training: the top-label map's knots [[x...], [y...]]; empty: none",
        json_schema_extra={"cli": False},
    )
    tune_thresholds: bool = Field(
        True,
        description="multi-label: tune each label's threshold on validation for its F1 (labels with "
        "fewer than --min-positives validation examples take one global threshold, tuned for micro-F1); "
        "--no-tune-thresholds: 0.5 for every label",
    )
    min_positives: int = Field(
        5, ge=1, description="multi-label: validation examples a label needs for a threshold of its own"
    )
    thresholds: list[float] = Field(
        default_factory=list,
        description="set by training: each label's threshold (multi-label)",
        json_schema_extra={"cli": False},
    )
    global_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="set by training: the multi-label threshold of rare labels",
        json_schema_extra={"cli": False},
    )
    oos_label: str = Field(
        "oos",
        description="the out-of-scope label: a training class of this name is the trained out-of-scope "
        "class; validation/test examples with it are the out-of-scope inputs; abstentions answer it",
    )
    oos_target_recall: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="abstain when the calibrated top score is below a threshold chosen on validation so "
        "that this share of its out-of-scope examples is caught (CLINC150's protocol; needs "
        "out-of-scope examples in the validation data)",
    )
    abstain_below: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="abstain (answer the out-of-scope label) when the calibrated top score is below this; "
        "with --oos-target-recall it is fitted by training instead",
    )


class ModelConfig(_Strict):
    """Everything needed to rebuild the network (labels included).

    With ``backbone`` set, a transformer embeds the tokens and ``embedding`` is unused."""

    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    backbone: BackboneConfig | None = None
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    field_weights: Literal["shared", "separate"] = Field(
        "shared",
        description="word models reading two fields: one encoder for both (shared) or one each "
        "(separate); the field representations are concatenated before the head",
    )
    cluster_features: int = Field(
        0,
        ge=0,
        description="K > 1: the k-means cluster (of K, fitted on train) of each text's sentence "
        "embedding is one more input of a word model (0: off)",
    )
    cluster_mode: Literal["concat", "add"] = Field(
        "concat",
        description="concat: a learned cluster embedding joins the sentence representation before "
        "the head; add: it is added to every token embedding at the first layer",
    )
    cluster_embedder: str = Field(
        "minilm-l6",
        description="the sentence-embedding model for --cluster-features: minilm-l6 (packaged, mean "
        "pooling) or a local Hugging Face encoder directory",
    )
    cluster_dim: int = Field(16, ge=1, description="size of the learned cluster embedding (concat mode)")
    bilm: BiLMConfig | None = Field(
        None, description="set by training with --embedder bilm:DIR: the biLM's architecture"
    )
    gamma: bool = Field(
        True,
        description="the scalar mix (--embedder bilm, --layer-mix) is scaled by a learned γ "
        "(ELMo); --no-gamma fixes γ at 1 (the ablation)",
    )
    head_dropout: float = Field(0.3, ge=0.0, lt=1.0, description="dropout before the classification layer")
    multi_label: bool | None = Field(
        None,
        description="several labels per text: one sigmoid per label, binary cross-entropy (with "
        "--class-weight balanced: pos_weight), every label above its threshold answered. Default: "
        "detected in the training data (label lists, several __label__s, --label-sep) and reported",
    )
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    labels: list[str] = Field(default_factory=list, json_schema_extra={"cli": False})  # from the data


class TrainConfig(_Strict):
    """The training loop's settings."""

    epochs: int = Field(
        10,
        ge=1,
        description="passes over the training data (a preset's target_steps plans at most this many; "
        "epochs you set are run as given)",
    )
    target_steps: int | None = Field(
        None,
        ge=1,
        description="train for the passes that reach this many optimizer steps (at least 3, at most "
        "epochs), so small data sets get more epochs and large ones fewer (transformer presets: 1500, "
        "unless you set epochs)",
    )
    batch_size: int = Field(64, ge=1, description="examples per batch")
    lr: float = Field(1e-3, gt=0, description="peak learning rate, AdamW")
    backbone_lr: float | None = Field(None, gt=0, description="transformer weights' LR (default: lr)")
    grad_accum: int = Field(
        1, ge=1, description="batches per optimizer step; the step's loss is the mean over all their examples"
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="used on GPU only")
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw", description="AdamW, or plain SGD (fastText's; works with sparse embedding gradients)"
    )
    weight_decay: float = Field(
        0.01, ge=0, description="AdamW weight decay (not on biases, norms, embeddings)"
    )
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of the steps spent warming up")
    schedule: Literal["linear", "cosine", "constant"] = Field("linear", description="learning-rate schedule")
    grad_clip: float = Field(1.0, ge=0, description="max gradient norm; 0 disables clipping")
    metric: Literal["accuracy", "macro_f1", "loss"] = Field(
        "accuracy", description="validation metric for early stopping and the best epoch"
    )
    patience: int = Field(3, ge=0, description="epochs without improvement before stopping; 0 = never")
    seed: int = Field(42, description="random seed; the same seed gives the same model on CPU")
    class_weight: Literal["balanced"] | None = Field(
        None,
        description="'balanced': weight classes by n / (classes * count) in the loss; multi-label: "
        "each label's positives by negatives / positives (pos_weight, clipped to [1, 100]: a label "
        "positive in half the texts or more keeps 1, its positives never weighted down)",
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy")
    tensorboard: bool = Field(True, description="write TensorBoard scalars")
    track: Literal["tensorboard", "mlflow", "none"] = Field(
        "tensorboard", description="experiment tracking backend (tensorboard needs tensorboard: true)"
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (default: sqlite:///<parent of the model dir>/mlflow.db)"
    )
    experiment: str = Field("textcls", description="MLflow experiment name")
    log_model: bool = Field(False, description="MLflow: upload the model directory as an artifact")
    cpu: bool = Field(False, description="train on CPU even if a GPU is present")
    time_limit: float | None = Field(
        None,
        gt=0,
        description="seconds of training at most: the epoch in progress then ends early, is "
        "validated, and the best model so far is kept (--model auto sets it from its budget)",
    )
    save_steps: int | None = Field(
        None,
        ge=1,
        description="also checkpoint every this many optimizer steps within an epoch, so --resume "
        "after a crash loses at most that many steps (default: at the end of each epoch only)",
    )
    save_init: bool = Field(
        False,
        description="keep the weights the training starts from (init.safetensors), for lottery-ticket "
        "rewinding in textcls prune",
    )
    rewind_at: str | None = Field(
        None,
        description="also keep the weights after this epoch or optimizer step, e.g. epoch:1 or step:200 "
        "(rewind.safetensors), for late rewinding in textcls prune",
    )

    @field_validator("rewind_at")
    @classmethod
    def _check_rewind_at(cls, value: str | None) -> str | None:
        if value is None or re.fullmatch(r"(epoch|step):\d+", value):
            return value
        raise ValueError("rewind_at must be epoch:N or step:N, e.g. epoch:1")


class PretrainConfig(_Strict):
    """``textcls pretrain``: continued masked-LM pretraining of a Hugging Face encoder, or an
    ELMo-style biLM for word models; saved in the output directory's ``pretrain.json``."""

    model: str = Field(
        "minilm-l6", description="minilm-l6 or a local Hugging Face encoder (masked LM), or bilm"
    )
    epochs: int = Field(1, ge=1, description="passes over the texts (max_steps / time_limit stop earlier)")
    max_steps: int | None = Field(
        None, ge=1, description="optimizer steps at most (sets the schedule's length)"
    )
    time_limit: float | None = Field(
        None, gt=0, description="seconds at most; the schedule still spans the planned steps"
    )
    batch_size: int = Field(32, ge=1)
    grad_accum: int = Field(
        1,
        ge=1,
        description="batches per optimizer step; the step's loss is the mean over all their predicted tokens",
    )
    lr: float = Field(5e-5, gt=0, description="peak learning rate (bilm default: 2e-3)")
    head_lr: float = Field(
        1e-3,
        gt=0,
        description="masked LM: learning rate of a newly created MLM head (it starts from nothing)",
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    grad_clip: float = Field(1.0, ge=0)
    max_length: int = Field(128, ge=8, description="tokens per window; longer texts continue in the next")
    mlm_probability: float = Field(
        0.15, gt=0, lt=1, description="masked LM: share of tokens (or words) chosen"
    )
    whole_word: bool = Field(False, description="masked LM: choose whole words, every piece of a chosen word")
    valid_fraction: float = Field(
        0.02,
        gt=0,
        lt=0.5,
        description="share of the windows (of max_length tokens) held out to measure perplexity: "
        "at least 1, at most 2,000",
    )
    save_steps: int = Field(500, ge=1, description="checkpoint and validate every N steps")
    log_steps: int = Field(50, ge=1, description="log training loss, perplexity and accuracy every N steps")
    seed: int = 42
    cpu: bool = False
    # the biLM (model: bilm): its tokenizer and vocabulary, then its architecture
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    vocab_size: int = Field(50000, ge=100, description="bilm: most frequent tokens kept")
    min_count: int = Field(2, ge=1, description="bilm: a token seen fewer times is <unk>")
    vectors: str | None = Field(None, description="bilm: initialise the word embeddings from these vectors")
    bilm: BiLMConfig = Field(default_factory=BiLMConfig)
    track: Literal["tensorboard", "mlflow", "none"] = "tensorboard"
    tracking_uri: str | None = None
    experiment: str = "textcls"


class ClassifierConfig(_Strict):
    """The whole configuration of one model directory."""

    version: int = CONFIG_VERSION
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ClassifierConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(f"{source}: invalid configuration:\n{error}") from None

    @classmethod
    def load(cls, path: str | Path) -> ClassifierConfig:
        return cls.from_dict(read_config_file(path), source=str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict (YAML is a superset of JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: not valid JSON: {error}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def deep_update(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``updates`` merged in recursively (updates win)."""
    merged = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged
