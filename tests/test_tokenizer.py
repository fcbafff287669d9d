"""RegexTokenizer, Vocab and length_stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from textcls.config import TokenizerConfig
from textcls.data.tokenizer import PAD, UNK, RegexTokenizer, Vocab, length_stats
from textcls.errors import ConfigError, ModelLoadError

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


# ---------------------------------------------------------------------------- featurizer and batches
# textcls.data.batching: text → ids (words, n-grams, bags), padded batches, truncation figures and
# the batch orders of training and inference.

WORDS = ["play", "some", "jazz", "rain"]  # ids 2, 3, 4, 5 (0 padding, 1 unknown)


def featurizer(words=WORDS, **options):
    from textcls.data.batching import WordFeaturizer

    return WordFeaturizer(TokenizerConfig(**{"max_length": 16, **options}), Vocab(list(words)))


def test_featurizer_encodes_words_unknowns_pairs_and_empty_texts() -> None:
    encode = featurizer(max_length=3).encode
    assert encode(["Play some JAZZ", "play xyz jazz", "rain", ""]) == [[2, 3, 4], [2, 1, 4], [5], [1]]
    assert encode(["play some jazz rain rain"]) == [[2, 3, 4]]  # cut at max_length
    assert encode([("play some", "jazz")]) == [[2, 3, 4]]  # a pair is read as one text
    plain = featurizer()
    assert plain.input_names == ["input_ids", "attention_mask"]
    assert plain.length([2, 3, 4]) == 3


def test_featurizer_counts_and_measures_what_max_length_cuts() -> None:
    cut = featurizer(max_length=3)
    texts = ["play some jazz", "play some jazz rain rain", "rain"]
    assert cut.count_long(texts) == 1  # exactly max_length words is not long
    assert cut.truncation(texts) == {
        "texts": 3,
        "cut": 1,
        "tokens_total": 9,
        "tokens_dropped": 2,
        "max_dropped": 2,
    }


def test_a_max_length_left_on_auto_is_refused() -> None:
    from textcls.errors import ConfigError

    with pytest.raises(ConfigError, match="max_length 'auto' is resolved by training"):
        featurizer(max_length="auto")


def test_word_ngrams_from_the_vocabulary_come_from_the_kept_words() -> None:
    words = [*WORDS, "play some", "some jazz"]  # "play some" = 6, "some jazz" = 7
    bigrams = featurizer(words, word_ngrams=2)
    assert bigrams.encode(["play some jazz", "jazz play"]) == [[2, 3, 4, 6, 7], [4, 2]]  # unseen: dropped
    assert featurizer(words, word_ngrams=2, max_length=2).encode(["play some jazz"]) == [[2, 3, 6]]
    assert bigrams.tokens("play some jazz") == ["play", "some", "jazz", "play some", "some jazz"]
    trigrams = featurizer(word_ngrams=3)
    assert trigrams.features(["a", "b", "c", "d"]) == ["a b", "b c", "c d", "a b c", "b c d"]
    assert trigrams.features(["a"]) == []


def test_char_ngrams_stay_inside_word_boundaries() -> None:
    chars = featurizer(char_ngrams=[2, 3])
    assert chars.features(["ab", "c"]) == [" a", "ab", "b ", " ab", "ab ", " c", "c ", " c "]
    both = featurizer(word_ngrams=2, char_ngrams=[2, 2])
    assert both.features(["ab", "c"]) == ["ab c", " a", "ab", "b ", " c", "c "]
    grams = featurizer([*WORDS, " r", "n "], char_ngrams=[2, 2])  # " r" = 6, "n " = 7
    assert grams.encode(["rain"]) == [[5, 6, 7]]


def test_hashed_ngrams_land_in_stable_rows_after_the_vocabulary() -> None:
    import zlib

    hashed = featurizer(word_ngrams=2, ngram_buckets=100)
    size = len(WORDS) + 2
    expected = [2, 3, 4] + [size + zlib.crc32(g.encode("utf-8")) % 100 for g in ("play some", "some jazz")]
    (ids,) = hashed.encode(["play some jazz"])
    assert ids == expected and all(size <= i < size + 100 for i in ids[3:])
    assert hashed.tokens("play some jazz") == ["play", "some", "jazz"]  # n-grams are no vocabulary entries
    chars = featurizer(char_ngrams=[2, 2], ngram_buckets=50)
    assert chars.encode(["ab"]) == [[1] + [size + zlib.crc32(g.encode()) % 50 for g in (" a", "ab", "b ")]]
    # words, then word bigrams, then each word's character n-grams, the same on every call (kept)
    both = featurizer(word_ngrams=2, char_ngrams=[2, 3], ngram_buckets=50)
    grams = both.features(["play", "ab"])
    expected = [[2, 1] + [size + zlib.crc32(g.encode()) % 50 for g in grams]]
    assert both.encode(["play ab"]) == expected == both.encode(["play ab"])
    assert "play" in both._char_rows and "ab" in both._char_rows  # a vocabulary word, and one met


def test_char_ngrams_auto_follows_the_script_of_the_training_words() -> None:
    from textcls.config import ClassifierConfig
    from textcls.training.fit import resolve_char_ngrams

    def resolved(words: list[list[str]], value: object = "auto") -> object:
        config = ClassifierConfig()
        config.model.tokenizer.char_ngrams = value
        resolve_char_ngrams(config, words)
        return config.model.tokenizer.char_ngrams

    assert resolved([["학교에서", "친구를"], ["만났다", "ok"]]) == [2, 3]
    assert resolved([["東京", "に", "行きます"]]) == [2, 3]
    assert resolved([["play", "some", "jazz"], ["학교"]]) is None  # most letters are Latin
    assert resolved([["학교에서"]], [1, 4]) == [1, 4]  # a given range stays
    config = ClassifierConfig()
    config.model.tokenizer.char_ngrams, config.model.tokenizer.engine = "auto", "kiwi"
    resolve_char_ngrams(config, [["학교", "에서"]])
    assert config.model.tokenizer.char_ngrams is None  # morphemes: the particles are split off
    assert TokenizerConfig(char_ngrams="none").char_ngrams is None
    with pytest.raises(ConfigError, match="char_ngrams 'auto' is resolved by training"):
        featurizer(char_ngrams="auto")


def test_fasttext_hashing_combines_word_hashes_and_hashes_unknown_words_by_their_text() -> None:
    import zlib

    def h(*words: str) -> int:
        value = 0
        for i, word in enumerate(words):
            value = (
                zlib.crc32(word.encode())
                if i == 0
                else (value * 116049371 + zlib.crc32(word.encode())) % 2**64
            )
        return value

    hashed = featurizer(word_ngrams=3, ngram_buckets=97, ngram_hash="words")
    size = len(WORDS) + 2
    (ids,) = hashed.encode(["play zebra jazz"])  # zebra is not in the vocabulary
    bigrams = [size + h("play", "zebra") % 97, size + h("zebra", "jazz") % 97]
    assert ids == [2, 1, 4, *bigrams, size + h("play", "zebra", "jazz") % 97]
    (other,) = hashed.encode(["play lion jazz"])  # another unknown word: other n-gram rows
    assert other[:3] == [2, 1, 4] and other[3:] != ids[3:]
    assert hashed.encode(["play"]) == [[2]] and hashed.encode([""]) == [[1]]


def test_bags_hold_each_id_once_with_its_count() -> None:
    bag = featurizer(bag=True)
    assert bag.input_names == ["input_ids", "attention_mask", "token_weights"]
    encoded = bag.encode(["play jazz play", "rain some jazz", "xyz", ""])
    assert encoded == [([2, 4], [2, 1]), ([5, 3, 4], [1, 1, 1]), ([1], [1]), ([1], [1])]
    assert [bag.length(item) for item in encoded] == [2, 3, 1, 1]
    batch = bag.collate_numpy(encoded)
    np.testing.assert_array_equal(batch["input_ids"], [[2, 4, 0], [5, 3, 4], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(batch["token_weights"], [[2, 1, 0], [1, 1, 1], [1, 0, 0], [1, 0, 0]])
    assert batch["token_weights"].dtype == np.float32
    tensors = bag.collate(encoded)
    assert set(tensors) == {"input_ids", "attention_mask", "token_weights"}
    assert tensors["token_weights"].dtype == torch.float32


def test_collate_pads_with_zeros_and_masks_only_the_padding() -> None:
    from textcls.data.batching import collate, collate_numpy

    batch = collate_numpy([[2, 1, 4], [5]])  # id 1 (unknown) is a real token, not padding
    np.testing.assert_array_equal(batch["input_ids"], [[2, 1, 4], [5, 0, 0]])
    np.testing.assert_array_equal(batch["attention_mask"], [[True, True, True], [True, False, False]])
    assert batch["input_ids"].dtype == np.int64 and batch["attention_mask"].dtype == bool
    tensors = collate([[2, 1, 4], [5]])
    assert tensors["input_ids"].dtype == torch.int64 and tensors["attention_mask"].dtype == torch.bool
    assert tensors["input_ids"].tolist() == [[2, 1, 4], [5, 0, 0]]
    assert featurizer().collate([[2, 1, 4], [5]])["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_truncation_stats_and_their_description() -> None:
    from textcls.data.batching import describe_truncation, truncation_stats

    assert truncation_stats([5, 4, 1], [3, 3, 1]) == {
        "texts": 3,
        "cut": 2,
        "tokens_total": 10,
        "tokens_dropped": 3,
        "max_dropped": 2,
    }
    nothing = {"texts": 0, "cut": 0, "tokens_total": 0, "tokens_dropped": 0, "max_dropped": 0}
    assert truncation_stats([], []) == nothing
    with pytest.raises(ValueError):
        truncation_stats([5, 4], [3])
    stats = {"texts": 500, "cut": 12, "tokens_total": 90112, "tokens_dropped": 3401, "max_dropped": 2016}
    assert describe_truncation(stats) == (
        "12 of 500 texts cut: 3,401 of 90,112 tokens dropped (3.8 %, at most 2,016 from one)"
    )
    assert "(0.0 %" in describe_truncation(nothing)
    one = {"texts": 1, "cut": 1, "tokens_total": 1, "tokens_dropped": 1, "max_dropped": 1}
    assert "1 of 1 tokens dropped (100.0 %, at most 1 from one)" in describe_truncation(one)


def test_training_batches_cover_every_example_once_with_similar_lengths() -> None:
    import itertools
    import random

    from textcls.data.batching import length_grouped_batches

    rng = random.Random(7)
    lengths = [rng.randint(1, 100) for _ in range(300)]
    assert len(set(lengths)) > 50
    batches = length_grouped_batches(lengths, 8, seed=3)
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    assert sorted(map(len, batches)) == [4] + [8] * 37
    # one pool (300 <= 8 * 50): the batches cut the length-sorted examples into consecutive runs
    by_length = sorted(batches, key=lambda batch: min(lengths[i] for i in batch))
    for first, second in itertools.pairwise(by_length):
        assert max(lengths[i] for i in first) <= min(lengths[i] for i in second)
    assert length_grouped_batches(lengths, 8, seed=3) == batches  # deterministic for a seed
    assert length_grouped_batches(lengths, 8, seed=4) != batches
    many = length_grouped_batches([1] * 1000, 4, seed=0, pool_factor=10)  # 25 pools of 40
    assert sorted(i for batch in many for i in batch) == list(range(1000)) and len(many) == 250


def test_inference_batches_are_sorted_by_length() -> None:
    from textcls.data.batching import sorted_batches

    assert list(sorted_batches([5, 1, 3, 3, 8, 2, 1], 2)) == [[1, 6], [5, 2], [3, 0], [4]]
    assert list(sorted_batches([], 4)) == []
