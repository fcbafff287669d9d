"""The two pretraining objectives behind one interface the loop drives: ``items`` (train, valid),
``length(item)``, ``collate(items)``, ``loss(batch, accuracy)``, ``save(directory)``.

- :class:`MaskedLM`: continued masked-LM pretraining of a Hugging Face encoder. A backbone shipped
  without its MLM head (the packaged MiniLM) gets a new one: the transform (dense + activation +
  LayerNorm) and a decoder tied to the word embeddings, as BERT's own. The output directory is a
  Hugging Face model directory that ``textcls train --model DIR`` fine-tunes.
- :class:`BiLMObjective`: the forward and backward language models of the biLM
  (``textcls.embeddings.bilm``) on word tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls.config import PretrainConfig
from textcls.errors import ConfigError

log = logging.getLogger(__name__)


def split_valid(items: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded share of the windows held out for validation (at least one, at most 2,000)."""
    order = np.random.default_rng(seed).permutation(len(items))
    count = min(2000, max(1, round(len(items) * fraction))) if len(items) > 1 else 0
    held = set(order[:count].tolist())
    return [x for i, x in enumerate(items) if i not in held], [items[i] for i in sorted(held)]


class MaskedLM:
    kind, accuracy_name = "mlm", "masked-token accuracy"

    def __init__(self, config: PretrainConfig, texts: Sequence[str]) -> None:
        from textcls.embeddings.transformer import import_transformers, resolve_backbone

        transformers = import_transformers()
        path = resolve_backbone(config.model)
        self.config = config
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        if self.tokenizer.mask_token_id is None:
            raise ConfigError(f"{config.model}: its tokenizer has no mask token; masked-LM needs one")
        self.model, info = transformers.AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        self.head_created = bool(info["missing_keys"])
        self.new_parameters = set(info["missing_keys"])  # the created head's: they get head_lr
        if self.head_created:
            self.model.tie_weights()
            log.warning(
                "%s has no masked-LM head: created one (transform + LayerNorm, decoder tied to the "
                "word embeddings); it starts untrained (%d new tensors)",
                config.model,
                len(info["missing_keys"]),
            )
        output, inputs = self.model.get_output_embeddings(), self.model.get_input_embeddings()
        self.tied = output is not None and output.weight is inputs.weight
        self.mask_id, self.pad_id = self.tokenizer.mask_token_id, self.tokenizer.pad_token_id or 0
        self.vocab_size = len(self.tokenizer)
        windows = self._windows(texts)
        self.train_items, self.valid_items = split_valid(windows, config.valid_fraction, config.seed)

    def _windows(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Every text in windows of ``max_length`` tokens (nothing is cut off): (ids, word ids with
        -1 at special tokens)."""
        ids, words = [], []
        step = 2000
        for start in range(0, len(texts), step):
            encoded = self.tokenizer(
                list(texts[start : start + step]),
                truncation=True,
                max_length=self.config.max_length,
                return_overflowing_tokens=True,
                return_special_tokens_mask=True,
            )
            for row, row_ids in enumerate(encoded["input_ids"]):
                special = encoded["special_tokens_mask"][row]
                word_ids = encoded.word_ids(row)
                ids.append(row_ids)
                words.append([-1 if s or w is None else w for s, w in zip(special, word_ids, strict=True)])
        return list(zip(ids, words, strict=True))

    @property
    def model_module(self) -> torch.nn.Module:
        return self.model

    @staticmethod
    def length(item: tuple[list[int], list[int]]) -> int:
        return len(item[0])

    def collate(self, items: Sequence[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """Dynamic padding to the longest window, then fresh masks (each epoch masks anew)."""
        from textcls.pretraining.masking import mask_tokens

        length = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), length), self.pad_id, dtype=torch.long)
        word_ids = torch.full((len(items), length), -1, dtype=torch.long)
        for row, (ids, words) in enumerate(items):
            input_ids[row, : len(ids)] = torch.as_tensor(ids)
            if self.config.whole_word:  # renumber the words of this window from 0
                present = torch.as_tensor(words)
                known = present >= 0
                if known.any():
                    present[known] -= present[known].min()
                word_ids[row, : len(ids)] = present
            else:
                word_ids[row, : len(ids)] = torch.as_tensor(words).clamp(max=0)  # -1 special, 0 else
        attention_mask = torch.arange(length).unsqueeze(0) < torch.as_tensor(
            [len(i) for i, _ in items]
        ).unsqueeze(1)
        maskable = (word_ids >= 0) & attention_mask
        inputs, labels = mask_tokens(
            input_ids,
            maskable,
            self.mask_id,
            self.vocab_size,
            self.config.mlm_probability,
            word_ids if self.config.whole_word else None,
        )
        return {"input_ids": inputs, "attention_mask": attention_mask.long(), "labels": labels}

    @staticmethod
    def targets(batch: dict[str, torch.Tensor]) -> int:
        """How many tokens ``loss`` predicts in a collated batch: the masked ones."""
        return int((batch["labels"] != -100).sum())

    def loss(
        self, batch: dict[str, torch.Tensor], accuracy: bool = False
    ) -> tuple[torch.Tensor, dict[str, int]]:
        """Cross-entropy at the chosen tokens. Where the MLM head is one module over the encoder's
        states (BERT's ``cls``, RoBERTa's ``lm_head``) only the chosen positions go through the
        vocabulary-sized decoder: about 7x less of the step's largest matrix product."""
        labels = batch["labels"]
        chosen = labels != -100
        head = next((getattr(self.model, n) for n in ("cls", "lm_head") if hasattr(self.model, n)), None)
        if head is not None:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            hidden = self.model.base_model(**inputs).last_hidden_state
            logits = head(hidden[chosen])
            gold = labels[chosen]
        else:
            logits, gold = self.model(**batch).logits[chosen], labels[chosen]
        loss = torch.nn.functional.cross_entropy(logits, gold) if gold.numel() else logits.sum() * 0.0
        stats = {"targets": int(gold.numel()), "correct": 0, "scored": 0}
        if accuracy:
            stats["correct"] = int((logits.detach().argmax(-1) == gold).sum())
            stats["scored"] = stats["targets"]
        return loss, stats

    def save(self, directory: Path) -> None:
        from textcls.integrity import shareable

        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        for weights in directory.glob("*.safetensors"):  # save_pretrained writes them 0600
            shareable(weights)

    def describe(self) -> dict[str, Any]:
        return {
            "objective": "masked LM",
            "mlm_head_created": self.head_created,
            "decoder_tied_to_word_embeddings": self.tied,
            "whole_word_masking": self.config.whole_word,
            "mlm_probability": self.config.mlm_probability,
            "windows": {"train": len(self.train_items), "valid": len(self.valid_items)},
        }


class BiLMObjective:
    kind, accuracy_name = "bilm", "next-token accuracy"

    def __init__(self, config: PretrainConfig, texts: Sequence[str]) -> None:
        from textcls.data.tokenizer import Vocab, make_tokenizer
        from textcls.embeddings.bilm import BiLM, default_cutoffs

        self.config = config
        tokenizer_config = config.tokenizer.model_copy(update={"max_length": config.max_length})
        if tokenizer_config.word_ngrams > 1 or tokenizer_config.char_ngrams or tokenizer_config.bag:
            raise ConfigError("the biLM reads words in order: no n-grams or bag in its tokenizer")
        self.tokenizer_config = tokenizer_config
        tokenizer = make_tokenizer(tokenizer_config)
        words = tokenizer.tokenize_batch(list(texts))
        counted = Vocab.build(words, config.min_count)
        self.vocab = Vocab(counted.tokens[: config.vocab_size])
        architecture = config.bilm.model_copy(deep=True)
        matrix = None
        if config.vectors:
            from textcls.embeddings.vectors import build_matrix, open_vectors

            source = open_vectors(config.vectors, needed=set(self.vocab.tokens))
            matrix, stats = build_matrix(self.vocab.tokens, source, config.seed)
            architecture.word_dim, architecture.vectors = matrix.shape[1], config.vectors
            log.info(
                "biLM word embeddings from %s: %.1f%% of the vocabulary found",
                config.vectors,
                100 * stats["coverage"],
            )
        if architecture.softmax == "adaptive":
            architecture.cutoffs = architecture.cutoffs or default_cutoffs(len(self.vocab))
            if not architecture.cutoffs:
                architecture.softmax = "full"  # a small vocabulary: the full softmax is cheap
        self.model = BiLM(architecture, len(self.vocab))
        self.model.fill_char_table(self.vocab.tokens)
        if matrix is not None:
            self.model.token.words.weight.data.copy_(torch.from_numpy(matrix))
        encode = self.vocab.index.get
        windows: list[list[int]] = []
        limit = config.max_length
        for text_words in words:
            ids = [encode(w, 1) for w in text_words]
            windows += [ids[i : i + limit] for i in range(0, len(ids), limit) if len(ids[i : i + limit]) > 1]
        self.train_items, self.valid_items = split_valid(windows, config.valid_fraction, config.seed)
        unknown = sum(i == 1 for w in windows for i in w) / max(1, sum(len(w) for w in windows))
        log.info(
            "biLM: %d texts, %d windows, vocabulary %d (min count %d; %.1f%% of tokens unknown), "
            "%s softmax%s, %d parameters",
            len(texts),
            len(windows),
            len(self.vocab),
            config.min_count,
            100 * unknown,
            architecture.softmax,
            f" (cutoffs {architecture.cutoffs})" if architecture.softmax == "adaptive" else "",
            sum(p.numel() for p in self.model.parameters()),
        )
        self.unknown_share = unknown

    @property
    def model_module(self) -> torch.nn.Module:
        return self.model

    @staticmethod
    def length(item: list[int]) -> int:
        return len(item)

    def collate(self, items: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        from textcls.data.batching import collate

        return collate(items)

    @staticmethod
    def targets(batch: dict[str, torch.Tensor]) -> int:
        """How many tokens ``loss`` predicts: each next token forwards and each previous one
        backwards, within every window."""
        mask = batch["attention_mask"].bool()
        return 2 * int((mask[:, 1:] & mask[:, :-1]).sum())

    def loss(
        self, batch: dict[str, torch.Tensor], accuracy: bool = False
    ) -> tuple[torch.Tensor, dict[str, int]]:
        return self.model.lm_loss(batch["input_ids"], batch["attention_mask"], accuracy)

    def save(self, directory: Path) -> None:
        from textcls.embeddings.bilm import save_bilm

        save_bilm(directory, self.model, self.tokenizer_config, self.vocab)

    def describe(self) -> dict[str, Any]:
        return {
            "objective": "forward + backward LM",
            "architecture": self.model.config.model_dump(),
            "vocab_size": len(self.vocab),
            "unknown_token_share": round(self.unknown_share, 4),
            "windows": {"train": len(self.train_items), "valid": len(self.valid_items)},
        }


def make_task(config: PretrainConfig, texts: Sequence[str]) -> MaskedLM | BiLMObjective:
    return BiLMObjective(config, texts) if config.model == "bilm" else MaskedLM(config, texts)
