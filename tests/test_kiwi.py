"""``--tokenizer kiwi``: Korean morphemes (kiwipiepy) for the word models: the tokens, their
options, batches against single texts, odd inputs, and models trained on them through save / load,
ONNX, the numpy backend and the command line."""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path

import numpy as np
import pytest

import textcls
from textcls.cli import main
from textcls.config import TokenizerConfig
from textcls.data import kiwi as kiwi_module
from textcls.data.tokenizer import RegexTokenizer, make_tokenizer
from textcls.errors import ConfigError, MissingDependencyError

pytest.importorskip("kiwipiepy", reason="the 'korean' extra (kiwipiepy) is not installed")

HATE_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "korean_hate_speech"
FAST = {"tensorboard": False, "cpu": True}
WORD = {"vectors": "random", "vectors_dim": 16, "epochs": 8, "batch_size": 16, "lr": 3e-2, "patience": 0}
CNN = {**WORD, "encoder_params": {"num_filters": 8, "kernel_sizes": [2, 3]}}


def tokenizer(**options) -> kiwi_module.KiwiTokenizer:
    made = make_tokenizer(TokenizerConfig(engine="kiwi", **options))
    assert isinstance(made, kiwi_module.KiwiTokenizer)
    return made


# Three classes told apart by their nouns, each noun seen with varying particles and endings: a
# word vocabulary splits every noun over several entries ("비가", "비는", "비를"); morphemes do not.
NOUNS = {
    "weather": ["비", "눈", "바람", "날씨", "태풍", "구름"],
    "food": ["김치", "라면", "비빔밥", "불고기", "떡볶이", "냉면"],
    "sports": ["축구", "야구", "농구", "배구", "골프", "테니스"],
}
PARTICLES = ["가", "는", "를", "도", "만", "까지"]
ENDINGS = ["좋아요", "싫었다", "봤어요", "대단하다", "최고예요 ㅋㅋ", "별로였어요ㅠㅠ"]


def korean_examples(per_class: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    examples = [
        (
            f"{rng.choice(nouns)}{rng.choice(PARTICLES)} {rng.choice(nouns)}{rng.choice(PARTICLES)} "
            f"{rng.choice(ENDINGS)}",
            label,
        )
        for label, nouns in NOUNS.items()
        for _ in range(per_class)
    ]
    rng.shuffle(examples)
    return examples


TRAIN, VALID, TEST = korean_examples(24, 1), korean_examples(6, 2), korean_examples(6, 3)
ODD_TEXTS = ["", "   ", "\u200b", "GOOD 영화 😀 10점", "ㅋㅋㅋㅋ", "비" * 3000, "x\ud800y 축구"]


# ----------------------------------------------------------------------------------- tokens
def test_korean_text_becomes_morphemes() -> None:
    kiwi = tokenizer()
    assert kiwi.tokenize("나는 밥을 먹었다") == ["나", "는", "밥", "을", "먹", "었", "다"]
    assert kiwi.tokenize("아버지가방에들어가신다") == ["아버지", "가", "방", "에", "들어가", "시", "ㄴ다"]
    # the same noun, one token whatever its particle (a whitespace tokenizer gives three words)
    assert {kiwi.tokenize(word)[0] for word in ("학교에", "학교는", "학교에서")} == {"학교"}
    assert len({*RegexTokenizer(TokenizerConfig()).tokenize("학교에 학교는 학교에서")}) == 3


def test_pos_tags_and_stop_tags() -> None:
    tagged = tokenizer(pos_tags=True).tokenize("나는 밥을 먹었다.")
    assert tagged == ["나/NP", "는/JX", "밥/NNG", "을/JKO", "먹/VV", "었/EP", "다/EF", "./SF"]
    # particles (J...) and endings (E...) dropped; lower-case prefixes work too
    assert tokenizer(stop_tags=["J", "E"]).tokenize("나는 밥을 먹었다.") == ["나", "밥", "먹", "."]
    assert tokenizer(stop_tags=["j", "e", "sf"]).tokenize("나는 밥을 먹었다.") == ["나", "밥", "먹"]
    # a longer prefix is narrower: JK (case particles) drops 을/JKO but keeps 는/JX
    assert tokenizer(stop_tags=["JK"], pos_tags=True).tokenize("나는 밥을") == ["나/NP", "는/JX", "밥/NNG"]
    with pytest.raises(ConfigError, match="stop tag 'Q'"):
        tokenizer(stop_tags=["J", "Q"])
    with pytest.raises(ConfigError, match="begins no Kiwi"):
        tokenizer(stop_tags=[" "])


def test_normalize_coda_joins_a_split_off_consonant() -> None:
    text = "먹었엌ㅋㅋ"
    assert tokenizer(pos_tags=True).tokenize(text) == ["먹/VV", "었/EP", "어/EF", "ㅋ/Z_CODA", "ㅋㅋ/SW"]
    assert tokenizer(pos_tags=True, kiwi_normalize_coda=True).tokenize(text) == [
        "먹/VV",
        "었/EP",
        "어/EF",
        "ㅋㅋㅋ/SW",
    ]


def test_lowercase_applies_to_latin_forms_not_to_tags() -> None:
    text = "iPhone 15 Pro 샀다"
    assert tokenizer().tokenize(text) == ["iphone", "15", "pro", "사", "었", "다"]
    assert tokenizer(lowercase=False).tokenize(text) == ["iPhone", "15", "Pro", "사", "었", "다"]
    assert tokenizer(pos_tags=True).tokenize(text)[:3] == ["iphone/SL", "15/SN", "pro/SL"]


def test_unicode_normalisation_keeps_typed_jamo() -> None:
    import unicodedata

    # plain NFKC would turn the jamo into conjoining jamo and compose 'ㅋㅠ' into the syllable '큐'
    assert unicodedata.normalize("NFKC", "ㅋㅠ") == "큐"
    assert tokenizer().tokenize("ㅋㅠ 비가 와요ㅠㅠ")[0] == "ㅋㅠ"
    assert tokenizer(pos_tags=True).tokenize("ㅋㅋㅋ") == ["ㅋㅋㅋ/SW"]
    # full-width Latin letters are compatibility characters: NFKC makes them plain (a Latin word)
    assert tokenizer(pos_tags=True).tokenize("ＡＢＣ") == ["abc/SL"]
    assert tokenizer(pos_tags=True, normalize="none", lowercase=False).tokenize("ＡＢＣ") == ["ＡＢＣ/SW"]
    assert kiwi_module.normalize_keeping_jamo("ㅋ①ㅠ") == "ㅋ1ㅠ"


def test_non_korean_text_is_kept() -> None:
    tokens = tokenizer(pos_tags=True).tokenize("GOOD 영화 😀👍🏽 10점 https://example.com 你好")
    assert tokens == [
        "good/SL",
        "영화/NNG",
        "😀/W_EMOJI",
        "👍🏽/W_EMOJI",
        "10/SN",
        "점/NNB",
        "https://example.com/W_URL",
        "你好/SH",
    ]


def test_empty_blank_and_odd_texts() -> None:
    kiwi = tokenizer()
    assert kiwi.tokenize("") == [] and kiwi.tokenize("  \n\t ") == [] and kiwi.tokenize("\u3000") == []
    assert kiwi.tokenize("\u200b\ufeff") == []  # zero-width space, BOM: no tokens of nothing
    assert kiwi.tokenize("x\ud800y") == ["x", "\ufffd", "y"]  # a lone surrogate does not crash Kiwi
    assert kiwi.tokenize("비\x00축구") == ["비", "축구"]
    # a title from Kiwi's dictionary of several words is one token, its spaces as _
    assert tokenizer().tokenize("해리 포터와 마법사의 돌을 읽었다")[0] == "해리_포터와_마법사의_돌"
    assert kiwi.tokenize_batch(["", "  ", "비가 와요", ""]) == [[], [], ["비", "가", "오", "어요"], []]
    assert kiwi.tokenize_batch([]) == []


def test_long_text() -> None:
    sentence = "나는 오늘 학교에 갔다. "
    tokens = tokenizer().tokenize(sentence * 1500)  # 21,000 characters
    assert tokens[:7] == ["나", "는", "오늘", "학교", "에", "가", "었"]
    assert len(tokens) == 1500 * len(tokenizer().tokenize(sentence))


def korean_lines(n: int) -> list[str]:
    if HATE_SPEECH.is_dir():
        lines = (HATE_SPEECH / "train.txt").read_text(encoding="utf-8").splitlines()[:n]
        return [line.rsplit("\t", 1)[0] for line in lines]
    return [text for text, _ in korean_examples(n, 9)][:n]


@pytest.mark.parametrize("options", [{}, {"pos_tags": True, "stop_tags": ["J", "E"]}])
def test_batch_equals_one_by_one_and_repeats(options) -> None:
    texts = [*korean_lines(150), *ODD_TEXTS]
    kiwi = tokenizer(**options)
    batch = kiwi.tokenize_batch(texts)
    assert batch == [kiwi.tokenize(text) for text in texts]
    assert tokenizer(**options).tokenize_batch(texts) == batch  # deterministic, a new tokenizer too
    assert sum(map(len, batch)) > 3 * len(texts)  # real analyses, not a few tokens each (either source)


def test_the_last_large_batch_is_read_once(monkeypatch, caplog) -> None:
    """Training tokenizes its texts for the vocabulary, then encodes them: Kiwi runs once."""
    monkeypatch.setattr(kiwi_module, "MEMO_BATCH", 10)
    monkeypatch.setattr(kiwi_module, "LOG_BATCH", 10)
    kiwi_module._memo.clear()
    texts = korean_lines(40)
    with caplog.at_level(logging.INFO, logger="textcls.data.kiwi"):
        first = tokenizer().tokenize_batch(texts)
    assert "kiwi: 40 texts" in caplog.text and "tokens/s" in caplog.text

    def no_kiwi():
        raise AssertionError("Kiwi ran again")

    monkeypatch.setattr(kiwi_module, "shared_kiwi", no_kiwi)
    again = tokenizer().tokenize_batch(list(texts))  # another tokenizer, an equal list
    assert again == first
    again[0].append("changed")
    assert tokenizer().tokenize_batch(texts)[0] == first[0]  # handed-out lists are copies
    with pytest.raises(AssertionError, match="ran again"):  # other options or texts: analysed again
        tokenizer(pos_tags=True).tokenize_batch(texts)
    with pytest.raises(AssertionError, match="ran again"):
        tokenizer().tokenize_batch(texts[1:])
    kiwi_module._memo.clear()


def test_one_kiwi_per_process_on_every_core() -> None:
    first = kiwi_module.shared_kiwi()
    assert kiwi_module.shared_kiwi() is first
    assert first.num_workers == kiwi_module.workers() >= 1


def test_missing_kiwipiepy_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # import kiwipiepy now fails
    with pytest.raises(MissingDependencyError, match=r"textcls\[korean\]"):
        make_tokenizer(TokenizerConfig(engine="kiwi"))


# ----------------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def kiwi_cnn() -> textcls.TextClassifier:
    classifier = textcls.TextClassifier(
        model="cnn", tokenizer_engine="kiwi", pos_tags=True, stop_tags=["J", "E"], **CNN, **FAST
    )
    return classifier.fit(TRAIN, VALID, progress=False)


def test_kiwi_model_learns_and_round_trips(kiwi_cnn, tmp_path: Path) -> None:
    assert kiwi_cnn.evaluate(TEST, latency=False)["accuracy"] >= 0.9
    vocab = kiwi_cnn.predictor.featurizer.vocab.tokens
    assert "비/NNG" in vocab and "축구/NNG" in vocab and not any("/J" in t or "/E" in t for t in vocab)
    kiwi_cnn.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())["model"]["tokenizer"]
    assert saved["engine"] == "kiwi" and saved["pos_tags"] and saved["stop_tags"] == ["J", "E"]
    reloaded = textcls.load(tmp_path / "model")
    texts = [*(text for text, _ in TEST), *ODD_TEXTS]
    np.testing.assert_array_equal(reloaded.predict_proba(texts), kiwi_cnn.predict_proba(texts))
    ours, theirs = kiwi_cnn.predictor.featurizer, reloaded.predictor.featurizer
    assert isinstance(theirs.tokenizer, kiwi_module.KiwiTokenizer)
    assert theirs.words_batch(texts) == ours.words_batch(texts)
    assert reloaded.predict(["떡볶이가 최고예요"])[0]["label"] == "food"


def test_kiwi_model_exports_to_onnx(kiwi_cnn, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from textcls.inference.export import export_model

    kiwi_cnn.save(tmp_path / "model")
    export_model(tmp_path / "model")
    texts = [*(text for text, _ in TEST), *ODD_TEXTS]
    onnx = textcls.load(tmp_path / "model", backend="onnx").predict_proba(texts)
    np.testing.assert_allclose(onnx, kiwi_cnn.predict_proba(texts), atol=1e-4)


@pytest.mark.parametrize("model", ["linear", "fasttext"])
def test_bag_models_on_morphemes_with_the_numpy_backend(model, tmp_path: Path) -> None:
    options = {"vectors": "random", "vectors_dim": 16, "epochs": 20} if model == "fasttext" else {}
    classifier = textcls.TextClassifier(model=model, tokenizer_engine="kiwi", **options, **FAST)
    classifier.fit(TRAIN, VALID, progress=False)
    # (fastText's rate of 5 on 72 examples is noisy; what matters here is that numpy agrees)
    assert classifier.evaluate(TEST, latency=False)["accuracy"] >= (0.9 if model == "linear" else 0.8)
    classifier.save(tmp_path / model)
    texts = [*(text for text, _ in TEST), *ODD_TEXTS]
    scores = textcls.load(tmp_path / model, backend="numpy").predict_proba(texts)
    np.testing.assert_allclose(scores, classifier.predict_proba(texts), atol=1e-4)


def test_cli_train_with_kiwi_on_korean_hate_speech(tmp_path: Path, capsys) -> None:
    if not (HATE_SPEECH / "train.txt").is_file():
        pytest.skip(f"the shared Korean hate speech data is not at {HATE_SPEECH}")
    data = tmp_path / "data"
    data.mkdir()
    lines = (HATE_SPEECH / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    for split, part in (("train", lines[:60]), ("valid", lines[60:80]), ("test", lines[80:100])):
        (data / f"{split}.txt").write_text("".join(part), encoding="utf-8")
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "--out", str(out), "--tokenizer", "kiwi", "--pos-tags"]
    args += ["--stop-tags", "J,E", "--vectors", "random", "--vectors-dim", "16", "--epochs", "2"]
    args += ["--no-progress", "--no-tensorboard", "--cpu"]
    assert main(args) == 0
    assert "test (" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())["model"]["tokenizer"]
    assert saved["engine"] == "kiwi" and saved["pos_tags"] is True and saved["stop_tags"] == ["J", "E"]
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert any(token.endswith("/NNG") for token in vocab)
    assert not any(token.rsplit("/", 1)[-1][:1] in "JE" for token in vocab[2:])
    assert main(["predict", str(out), "정말 재밌던데 ㅋㅋ", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert predicted["text"] == "정말 재밌던데 ㅋㅋ"
    assert predicted["predictions"][0]["label"] in {"none", "offensive", "hate"}


def test_threads_share_the_analyser() -> None:
    """A server tokenizes in several threads at once: the one Kiwi gives each the same tokens."""
    from concurrent.futures import ThreadPoolExecutor

    texts = korean_lines(60)
    kiwi = tokenizer()
    expected = [kiwi.tokenize(text) for text in texts]

    def job(i: int) -> list[list[str]]:
        return kiwi.tokenize_batch(texts) if i % 2 else [kiwi.tokenize(text) for text in texts]

    with ThreadPoolExecutor(4) as pool:
        assert all(result == expected for result in pool.map(job, range(8)))
