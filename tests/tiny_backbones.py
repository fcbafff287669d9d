"""Tiny random-initialised Hugging Face encoders built from configs (no download), one per
architecture: WordPiece from the packaged MiniLM vocabulary for BERT / DistilBERT / ALBERT /
ELECTRA, a byte-level BPE trained on the fly for RoBERTa / BART."""

from __future__ import annotations

from pathlib import Path

ARCHITECTURES = ["bert", "distilbert", "albert", "roberta", "bart", "electra"]
LAYERS = 4

SIZES = {
    "bert": {
        "hidden_size": 32,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    "electra": {
        "hidden_size": 32,
        "embedding_size": 32,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    "albert": {
        "hidden_size": 32,
        "embedding_size": 16,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    "distilbert": {"dim": 32, "n_layers": LAYERS, "n_heads": 2, "hidden_dim": 64},
    "roberta": {
        "hidden_size": 32,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    "bart": {
        "d_model": 32,
        "encoder_layers": LAYERS,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
    },
}

CORPUS = [
    "play some jazz by miles davis",
    "will it rain in paris tomorrow",
    "book a table for two at an italian restaurant",
    "rate this book five stars",
    "add this song to my workout playlist",
    "find the movie schedule for tonight",
    "the quick brown fox jumps over the lazy dog",
] * 20


def wordpiece_tokenizer():
    from transformers import AutoTokenizer

    from textcls.embeddings.transformer import minilm_l6

    return AutoTokenizer.from_pretrained(minilm_l6())


def byte_bpe_tokenizer(directory: Path, extra_texts: list[str]):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(CORPUS + extra_texts, vocab_size=400, min_frequency=1, special_tokens=specials)
    directory.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(directory))
    return RobertaTokenizer.from_pretrained(directory)


def build(architecture: str, directory: Path, extra_texts: list[str] = ()) -> Path:
    """Write a tiny model directory (config, safetensors weights, tokenizer) and return it."""
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    if architecture in ("roberta", "bart"):
        tokenizer = byte_bpe_tokenizer(directory / "bpe", list(extra_texts))
        ids = {
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
    else:
        tokenizer = wordpiece_tokenizer()
        ids = {"pad_token_id": tokenizer.pad_token_id}
    config = AutoConfig.for_model(
        architecture, vocab_size=len(tokenizer), max_position_embeddings=130, **SIZES[architecture], **ids
    )
    AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
