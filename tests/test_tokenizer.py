"""RegexTokenizer, Vocab and length_stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from textcls.config import TokenizerConfig
from textcls.data.tokenizer import PAD, UNK, RegexTokenizer, Vocab, length_stats
from textcls.errors import ModelLoadError

SNIPS_TRAIN = Path(__file__).resolve().parents[1] / "data" / "snips" / "train.txt"
SNIPS_LINES = SNIPS_TRAIN.read_text(encoding="utf-8").splitlines()[:2000] if SNIPS_TRAIN.is_file() else []

# ---------------------------------------------------------------------------- tokenizer


def test_tokenizer_lowercases_by_default() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig())
    assert tokenizer.tokenize("Play Miles DAVIS") == ["play", "miles", "davis"]


def test_tokenizer_keeps_case_when_lowercase_off() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig(lowercase=False))
    assert tokenizer.tokenize("Play Miles DAVIS") == ["Play", "Miles", "DAVIS"]


def test_tokenizer_splits_punctuation_into_tokens() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig())
    assert tokenizer.tokenize("jazz, now!  (please)?") == [
        "jazz",
        ",",
        "now",
        "!",
        "(",
        "please",
        ")",
        "?",
    ]


def test_tokenizer_keeps_inner_hyphens_and_splits_clitics() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig())
    assert tokenizer.tokenize("don't re-book it") == ["do", "n't", "re-book", "it"]
    # clitics split the Penn Treebank way (as GloVe's vocabulary has them), pre-split text agrees
    assert tokenizer.tokenize("It's fine, they're here") == ["it", "'s", "fine", ",", "they", "'re", "here"]
    assert tokenizer.tokenize("it does n't work") == tokenizer.tokenize("it doesn't work")
    # an apostrophe not between word characters is its own token
    assert tokenizer.tokenize("Davis' song") == ["davis", "'", "song"]


def test_tokenizer_custom_pattern_and_empty_text() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig(pattern=r"\S+"))
    assert tokenizer.tokenize("a,b c!") == ["a,b", "c!"]
    assert RegexTokenizer(TokenizerConfig()).tokenize("   ") == []


# ---------------------------------------------------------------------------- vocab


def test_vocab_reserves_pad_and_unk() -> None:
    vocab = Vocab.build([["b", "a", "b"]])
    assert vocab.tokens[:2] == [PAD, UNK]
    assert vocab.index[PAD] == 0 and vocab.index[UNK] == 1
    # by frequency, then alphabetically
    assert vocab.tokens[2:] == ["b", "a"]
    assert vocab.encode(["a", "b", "never-seen"], max_length=10) == [3, 2, 1]


def test_vocab_constructor_adds_pad_and_unk_when_missing() -> None:
    vocab = Vocab(["x", UNK, "y"])
    assert vocab.tokens == [PAD, UNK, "x", "y"]
    assert len(vocab) == 4 and "x" in vocab and "z" not in vocab


def test_vocab_frequency_order_with_ties() -> None:
    vocab = Vocab.build([["c", "b", "a"], ["c", "b"], ["c"]])
    assert vocab.tokens[2:] == ["c", "b", "a"]
    vocab = Vocab.build([["z", "y"], ["x"]])  # all count 1: alphabetical
    assert vocab.tokens[2:] == ["x", "y", "z"]


def test_vocab_min_count_drops_rare_words() -> None:
    token_lists = [["common", "rare"], ["common", "twice"], ["twice", "common"]]
    vocab = Vocab.build(token_lists, min_count=2)
    assert vocab.tokens[2:] == ["common", "twice"]
    assert "rare" not in vocab
    assert vocab.encode(["rare"], 5) == [1]
    assert Vocab.build(token_lists, min_count=4).tokens == [PAD, UNK]


def test_vocab_extra_words_appended_without_duplicates() -> None:
    vocab = Vocab.build([["jazz", "play"], ["play"]], extra=["the", "play", "of", "jazz"])
    assert vocab.tokens == [PAD, UNK, "play", "jazz", "the", "of"]
    # extra words are added even though min_count would drop unseen words
    assert Vocab.build([["a"]], min_count=2, extra=["a", "b"]).tokens == [PAD, UNK, "a", "b"]


def test_vocab_extra_words_repeated_or_reserved_are_not_duplicated() -> None:
    """Vector files can list a word twice or hold their own <unk>/<pad> rows."""
    vocab = Vocab.build([["a"]], extra=["b", "b", UNK, PAD, "c"])
    assert len(vocab.tokens) == len(set(vocab.tokens)), vocab.tokens
    assert vocab.tokens == [PAD, UNK, "a", "b", "c"]
    # every token maps back to its own position
    assert all(vocab.index[token] == i for i, token in enumerate(vocab.tokens))


def test_vocab_encode_truncates_to_max_length() -> None:
    vocab = Vocab.build([list("abcdef")])
    ids = vocab.encode(list("abcdef"), max_length=3)
    assert ids == [vocab.index["a"], vocab.index["b"], vocab.index["c"]]
    assert len(vocab.encode(list("abcdef"), max_length=100)) == 6


def test_vocab_encode_empty_gives_one_unknown_token() -> None:
    vocab = Vocab.build([["a"]])
    assert vocab.encode([], max_length=8) == [1]


def test_vocab_save_load_round_trip(tmp_path: Path) -> None:
    vocab = Vocab.build([["héllo", "wörld", "don't", ",", "e-mail"], ["héllo"]], extra=["the", "über"])
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded.tokens == vocab.tokens
    assert loaded.index == vocab.index
    assert path.read_text(encoding="utf-8").splitlines() == vocab.tokens


def test_vocab_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="vocab"):
        Vocab.load(tmp_path / "missing.txt")


# ---------------------------------------------------------------------------- length_stats


def test_length_stats() -> None:
    lengths = [1, 2, 3, 4, 10, 20]
    stats = length_stats(lengths, max_length=4)
    assert stats["mean"] == pytest.approx(np.mean(lengths))
    assert stats["p50"] == pytest.approx(np.median(lengths))
    assert stats["p95"] == pytest.approx(np.percentile(lengths, 95))
    assert stats["max"] == 20
    assert stats["truncated"] == 2  # 10 and 20 exceed 4; 4 itself is kept whole
    assert length_stats(lengths, max_length=100)["truncated"] == 0


# ------------------------------------------------------------------ scripts, marks, normalisation


def test_combining_marks_stay_in_their_word() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig())
    assert tokenizer.tokenize("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # Devanagari vowel signs, virama
    assert tokenizer.tokenize("ஒரு தமிழ் வாக்கியம்") == ["ஒரு", "தமிழ்", "வாக்கியம்"]


def test_decomposed_and_composed_text_tokenize_alike() -> None:
    import unicodedata

    tokenizer = RegexTokenizer(TokenizerConfig())
    composed, decomposed = "Café crème", unicodedata.normalize("NFD", "Café crème")
    assert composed != decomposed
    assert tokenizer.tokenize(decomposed) == tokenizer.tokenize(composed) == ["café", "crème"]
    assert tokenizer.tokenize("ﬁne　ｔｅｘｔ") == ["fine", "text"]  # NFKC: ligature, full-width
    raw = RegexTokenizer(TokenizerConfig(normalize="none"))
    assert raw.tokenize("ﬁne") == ["ﬁne"]


def test_grapheme_clusters_are_single_tokens() -> None:
    tokenizer = RegexTokenizer(TokenizerConfig())
    assert tokenizer.tokenize("great 👍🏽!") == ["great", "👍🏽", "!"]  # emoji + skin-tone modifier
    assert tokenizer.tokenize("🇰🇷 flag") == ["🇰🇷", "flag"]  # a regional-indicator pair


def test_ascii_fast_path_agrees_with_the_unicode_engine() -> None:
    import regex

    config = TokenizerConfig()
    tokenizer = RegexTokenizer(config)
    full = regex.compile(config.pattern).findall
    texts = [line.split("\t")[0] for line in SNIPS_LINES if line.split("\t")[0].isascii()]
    texts += ["don't stop-me now!!", "it's 3.5 o'clock -- e-mail", 'a\r\nb\t"q" (x) [y]']
    assert texts and all(tokenizer.tokenize(t) == full(t.lower()) for t in texts)


def test_an_old_pattern_saved_in_a_model_still_works() -> None:
    old = r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|\w+(?:-\w+)*|[^\w\s]"
    tokenizer = RegexTokenizer(TokenizerConfig(pattern=old))
    assert tokenizer.tokenize("Doesn't it, Miles?") == ["does", "n't", "it", ",", "miles", "?"]
