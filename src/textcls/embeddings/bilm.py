"""An ELMo-style bidirectional language model (Peters et al. 2018) sized for a CPU, and the embedder
that feeds a word encoder the scalar mix of its layers.

The biLM: a token representation (word embeddings, optionally GloVe-initialised, and optionally a
character CNN over each token's UTF-8 bytes with highway layers, projected to ``projection_dim``),
then a forward and a backward stack of LSTM layers. Each layer is followed by a linear projection
back to ``projection_dim`` (outside the recurrence: ONNX has no LSTM projection) and, from the
second layer on, a residual connection. Both directions share the token representation and the
softmax (adaptive for large vocabularies, Grave et al. 2017, ``torch.nn.AdaptiveLogSoftmaxWithLoss``).
The forward stack at position t has read tokens 0..t and predicts t+1; the backward stack has
read t..end and predicts t-1, so neither sees the token it predicts.

Directory written by ``textcls pretrain --model bilm``: ``config.json`` (the architecture and the
tokenizer), ``vocab.txt``, ``model.safetensors``, ``pretrain.json`` / ``pretrain.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from textcls.config import BiLMConfig, TokenizerConfig
from textcls.errors import ConfigError, ModelLoadError

BILM_FORMAT = "textcls-bilm"
PAD_BYTE, BOW, EOW, BYTE_OFFSET = 0, 1, 2, 3  # character ids: 0 padding, word start/end, byte + 3
CHAR_VOCAB = 256 + BYTE_OFFSET


def byte_table(tokens: Sequence[str], max_chars: int) -> np.ndarray:
    """Each token as ``max_chars`` character ids: word start, its UTF-8 bytes (cut), word end,
    padding. Row 0 (padding) is all zeros.

    >>> byte_table(["<pad>", "ab"], 5).tolist()
    [[0, 0, 0, 0, 0], [1, 100, 101, 2, 0]]
    """
    table = np.zeros((len(tokens), max_chars), dtype=np.int64)
    for row, token in enumerate(tokens):
        if row == 0:
            continue
        data = [b + BYTE_OFFSET for b in token.encode("utf-8")[: max_chars - 2]]
        ids = [BOW, *data, EOW]
        table[row, : len(ids)] = ids
    return table


class Highway(nn.Module):
    """Highway layers (Srivastava et al. 2015): y = g · x + (1 - g) · relu(W x), g = σ(V x)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(layers))
        for layer in self.layers:  # start by carrying the input (ELMo's initialisation)
            nn.init.constant_(layer.bias[dim:], 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            transform, gate = layer(x).chunk(2, dim=-1)
            gate = torch.sigmoid(gate)
            x = gate * x + (1 - gate) * F.relu(transform)
        return x


class CharCNN(nn.Module):
    """Character ids [..., max_chars] → max-pooled convolutions → highway → [..., sum of counts]."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(CHAR_VOCAB, config.char_dim, padding_idx=PAD_BYTE)
        widths = [w for w, _ in config.char_filters]
        if any(w > config.max_chars for w in widths):
            raise ConfigError(f"char filter widths {widths} must not exceed max_chars {config.max_chars}")
        self.convs = nn.ModuleList(nn.Conv1d(config.char_dim, n, w) for w, n in config.char_filters)
        self.output_dim = sum(n for _, n in config.char_filters)
        self.highway = Highway(self.output_dim, config.highway_layers)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        shape = chars.shape[:-1]
        x = self.embedding(chars.reshape(-1, chars.size(-1))).transpose(1, 2)  # [N, dim, C]
        pooled = torch.cat([F.relu(conv(x)).amax(dim=-1) for conv in self.convs], dim=-1)
        return self.highway(pooled).reshape(*shape, self.output_dim)


class TokenRepresentation(nn.Module):
    """Token ids → word embedding ⊕ character CNN → linear projection [B, T, projection_dim].
    The character ids of every vocabulary entry are a buffer (``char_table``), so a word's
    characters travel with the model and need no extra input."""

    def __init__(self, config: BiLMConfig, vocab_size: int) -> None:
        super().__init__()
        if config.word_dim == 0 and not config.char_cnn:
            raise ConfigError("a biLM needs word embeddings (word_dim > 0) or the character CNN")
        width = 0
        self.words = None
        if config.word_dim:
            self.words = nn.Embedding(vocab_size, config.word_dim, padding_idx=0)
            width += config.word_dim
        self.chars = None
        if config.char_cnn:
            self.chars = CharCNN(config)
            self.register_buffer("char_table", torch.zeros(vocab_size, config.max_chars, dtype=torch.long))
            width += self.chars.output_dim
        self.projection = nn.Linear(width, config.projection_dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.words is not None:
            parts.append(self.words(input_ids))
        if self.chars is not None:
            parts.append(self.chars(self.char_table[input_ids]))
        return self.projection(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each right-padded sequence of [B, T, D] within its length (padding stays last)."""
    steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    index = torch.where(steps <= last, last - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class BiLM(nn.Module):
    """The bidirectional language model; ``layers()`` gives the L + 1 representations the scalar
    mix reads, ``lm_loss()`` the pretraining objective."""

    def __init__(self, config: BiLMConfig, vocab_size: int, with_softmax: bool = True) -> None:
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        dim = config.projection_dim
        self.token = TokenRepresentation(config, vocab_size)

        def stack() -> tuple[nn.ModuleList, nn.ModuleList]:
            lstms = nn.ModuleList(
                nn.LSTM(dim, config.hidden_size, batch_first=True) for _ in range(config.layers)
            )
            projections = nn.ModuleList(nn.Linear(config.hidden_size, dim) for _ in range(config.layers))
            return lstms, projections

        self.forward_lstms, self.forward_projections = stack()
        self.backward_lstms, self.backward_projections = stack()
        self.dropout = nn.Dropout(config.dropout)
        self.softmax: nn.Module | None = None
        if with_softmax:
            if config.softmax == "adaptive":
                if not config.cutoffs:
                    raise ConfigError("an adaptive softmax needs cutoffs (set by textcls pretrain)")
                cutoffs = list(config.cutoffs)
                if cutoffs != sorted(set(cutoffs)) or cutoffs[0] < 1 or cutoffs[-1] >= vocab_size:
                    raise ConfigError(
                        f"bilm.cutoffs {cutoffs}: increasing token ids between 1 and the vocabulary size "
                        f"({vocab_size}) less one; leave them unset to take the default for this vocabulary"
                    )
                self.softmax = nn.AdaptiveLogSoftmaxWithLoss(dim, vocab_size, config.cutoffs, div_value=4.0)
            else:
                self.softmax = nn.Linear(dim, vocab_size)

    @property
    def output_dim(self) -> int:
        return 2 * self.config.projection_dim

    def _stack(self, x: torch.Tensor, lstms: nn.ModuleList, projections: nn.ModuleList) -> list[torch.Tensor]:
        outputs = []
        for number, (lstm, projection) in enumerate(zip(lstms, projections, strict=True)):
            h = projection(lstm(self.dropout(x))[0])
            x = h + x if number > 0 else h  # residual between layers
            outputs.append(x)
        return outputs

    def directions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """(token representation, forward layers, backward layers), each [B, T, projection_dim];
        the backward layers are back in reading order."""
        tokens = self.token(input_ids)
        lengths = attention_mask.long().sum(1).clamp(min=1)
        forward = self._stack(tokens, self.forward_lstms, self.forward_projections)
        backward = self._stack(
            reverse_padded(tokens, lengths), self.backward_lstms, self.backward_projections
        )
        return tokens, forward, [reverse_padded(h, lengths) for h in backward]

    def layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """The L + 1 layers of the mix, each [B, T, 2 · projection_dim]: the token layer (itself
        twice, as ELMo does), then each LSTM layer's forward and backward states."""
        tokens, forward, backward = self.directions(input_ids, attention_mask)
        return [torch.cat([tokens, tokens], -1)] + [
            torch.cat([f, b], -1) for f, b in zip(forward, backward, strict=True)
        ]

    def lm_loss(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, accuracy: bool = False
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean negative log-likelihood of both directions' next (previous) tokens; with
        ``accuracy``, how many of (at most 1,024 of) the targets the top prediction gets right."""
        if self.softmax is None:
            raise ConfigError("this biLM was built without its softmax")
        _, forward, backward = self.directions(input_ids, attention_mask)
        mask = attention_mask.bool()
        valid = mask[:, 1:] & mask[:, :-1]  # both ends of a (t, t+1) pair are tokens
        states = torch.cat(
            [self.dropout(forward[-1])[:, :-1][valid], self.dropout(backward[-1])[:, 1:][valid]]
        )
        targets = torch.cat([input_ids[:, 1:][valid], input_ids[:, :-1][valid]])
        if targets.numel() == 0:
            zero = states.sum() * 0.0
            return zero, {"targets": 0, "correct": 0, "scored": 0}
        if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
            loss = self.softmax(states, targets).loss
        else:
            loss = F.cross_entropy(self.softmax(states), targets)
        stats = {"targets": int(targets.numel()), "correct": 0, "scored": 0}
        if accuracy:
            with torch.no_grad():
                picked = torch.randperm(targets.numel(), device=targets.device)[:1024]
                sub_states, sub_targets = states[picked].detach(), targets[picked]
                if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
                    predicted = self.softmax.predict(sub_states)
                else:
                    predicted = self.softmax(sub_states).argmax(-1)
                stats["correct"] = int((predicted == sub_targets).sum())
                stats["scored"] = int(sub_targets.numel())
        return loss, stats

    def fill_char_table(self, tokens: Sequence[str]) -> None:
        """Set the character ids of every vocabulary entry (a no-op without the character CNN)."""
        if self.token.chars is not None:
            table = torch.from_numpy(byte_table(tokens, self.config.max_chars))
            self.token.char_table.copy_(table.to(self.token.char_table.device))


def default_cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax cluster boundaries for a frequency-sorted vocabulary: a head of the 2,000
    most frequent tokens (4,000 from 40k up), then clusters ~4× larger; empty when the vocabulary
    is small enough for a full softmax.

    >>> default_cutoffs(3000), default_cutoffs(30000), default_cutoffs(100000)
    ([], [2000, 10000], [4000, 20000, 60000])
    """
    head = 4000 if vocab_size >= 40000 else 2000
    if vocab_size < 2 * head:
        return []
    cutoffs, edge = [], head
    while edge < vocab_size - head:
        cutoffs.append(edge)
        edge = edge * (5 if len(cutoffs) == 1 else 3)
    return cutoffs


# ------------------------------------------------------------------- the embedder of a word model
class BiLMEmbedder(nn.Module):
    """``input_ids`` → the scalar mix of the biLM's layers as ``token_embeddings`` [B, T, 2P], or
    with ``word_dim`` [B, T, 2P + word_dim]: the mix joined to a trainable word embedding, as ELMo
    joins its vector to the task model's own token representation (Peters et al. 2018, §3.3).

    ``freeze`` keeps the biLM's weights fixed and its dropout off (ELMo's default use); the mix
    weights, γ, the word embedding and the encoder train either way. ``dropout`` is on the mix."""

    def __init__(
        self,
        config: BiLMConfig,
        vocab_size: int,
        gamma: bool,
        freeze: bool,
        dropout: float,
        word_dim: int = 0,
    ) -> None:
        super().__init__()
        from textcls.embeddings.mix import ScalarMix

        self.bilm = BiLM(config, vocab_size, with_softmax=False)
        self.mix = ScalarMix(config.layers + 1, gamma)
        self.dropout = nn.Dropout(dropout)
        self.words: nn.Embedding | None = None
        if word_dim:  # random like --vectors random (normal, std 0.25; padding row zero)
            self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0)
            with torch.no_grad():
                self.words.weight.normal_(0.0, 0.25)
                self.words.weight[0] = 0.0
        self.output_dim = self.bilm.output_dim + word_dim
        self.frozen = freeze
        if freeze:
            self.bilm.requires_grad_(False)

    def train(self, mode: bool = True) -> BiLMEmbedder:
        super().train(mode)
        if self.frozen:
            self.bilm.eval()
        return self

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        layers = self.bilm.layers(features["input_ids"], features["attention_mask"])
        mixed = self.dropout(self.mix(layers))
        if self.words is not None:
            mixed = torch.cat([mixed, self.words(features["input_ids"])], dim=-1)
        features["token_embeddings"] = mixed
        return features


# ------------------------------------------------------------------- the pretrained directory
def save_bilm(directory: Path, model: BiLM, tokenizer: TokenizerConfig, vocab: Any) -> None:
    from textcls.integrity import write_safetensors

    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "format": BILM_FORMAT,
        "version": 1,
        "bilm": model.config.model_dump(),
        "tokenizer": tokenizer.model_dump(),
        "vocab_size": len(vocab),
    }
    (directory / "config.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    vocab.save(directory / "vocab.txt")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_safetensors(directory / "model.safetensors", state, {"format": BILM_FORMAT})


def bilm_directory(embedder: str) -> Path:
    """``bilm:DIR`` → DIR, checked to be a biLM directory."""
    directory = Path(embedder.removeprefix("bilm:")).expanduser()
    path = directory / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"--embedder {embedder}: {directory} holds no config.json; pretrain one with "
            "'textcls pretrain --model bilm --data FILE --out DIR'"
        )
    if json.loads(path.read_text(encoding="utf-8")).get("format") != BILM_FORMAT:
        raise ConfigError(f"--embedder {embedder}: {directory} is not a biLM written by textcls pretrain")
    return directory


def load_bilm(directory: Path) -> tuple[BiLMConfig, TokenizerConfig, Any, dict[str, torch.Tensor]]:
    """(architecture, tokenizer config, vocabulary, weights) of a pretrained biLM directory."""
    from safetensors.torch import load_file

    from textcls.data.tokenizer import Vocab

    document = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    try:
        config = BiLMConfig.model_validate(document["bilm"])
        tokenizer = TokenizerConfig.model_validate(document["tokenizer"])
    except (KeyError, ValueError) as error:
        raise ModelLoadError(f"{directory}/config.json: not a valid biLM config: {error}") from None
    vocab = Vocab.load(directory / "vocab.txt")
    if not (directory / "model.safetensors").is_file():
        raise ModelLoadError(f"{directory}: missing model.safetensors")
    return config, tokenizer, vocab, load_file(str(directory / "model.safetensors"))


def load_pretrained_into(bilm: BiLM, state: dict[str, torch.Tensor], tokens: Sequence[str]) -> dict[str, int]:
    """Copy pretrained weights into ``bilm``, whose vocabulary ``tokens`` starts with the pretrained
    one and may add words (the fine-tuning data's): their word rows start at zero, so the
    character CNN (when present) alone represents them. The softmax is left out."""
    own = bilm.state_dict()
    rows = state["token.words.weight"].shape[0] if "token.words.weight" in state else None
    for name, value in state.items():
        if name.startswith("softmax.") or name == "token.char_table":
            continue
        if name not in own:
            raise ModelLoadError(f"biLM weight {name} is unknown to this architecture")
        if name == "token.words.weight":
            own[name].zero_()
            own[name][: value.shape[0]] = value
        else:
            own[name].copy_(value)
    bilm.load_state_dict(own)
    bilm.fill_char_table(tokens)
    return {"pretrained_rows": int(rows or 0), "added_rows": len(tokens) - int(rows or len(tokens))}
