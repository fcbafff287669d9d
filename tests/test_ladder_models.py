"""The bottom of the ladder: ``linear`` (TF-IDF + a linear classifier) and ``fasttext`` (mean of
word and hashed n-gram embeddings): the same registry, model directory, Predictor and backends as
every other model."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

import textcls
from conftest import CLASS_WORDS, make_examples
from textcls.cli import main
from textcls.errors import ConfigError

TRAIN, VALID, TEST = make_examples(30, 1), make_examples(8, 2), make_examples(8, 3)
TEXTS = [t for t, _ in TEST]
FAST = {"tensorboard": False, "cpu": True}


@pytest.fixture(scope="module")
def linear() -> textcls.TextClassifier:
    return textcls.TextClassifier(model="linear", **FAST).fit(TRAIN, VALID, progress=False)


@pytest.fixture(scope="module")
def fasttext_model() -> textcls.TextClassifier:
    options = {"vectors": "random", "vectors_dim": 16, "ngram_buckets": 1000, "epochs": 3, **FAST}
    return textcls.TextClassifier(model="fasttext", **options).fit(TRAIN, VALID, progress=False)


def test_linear_is_tfidf_plus_linear_svc(linear) -> None:
    """The scores are scikit-learn's own: TfidfVectorizer(sublinear_tf) + LinearSVC, same C."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    featurizer = linear.predictor.featurizer
    encoder = linear.predictor.model.encoder
    chosen_c = linear.train_result.extra["fit"]["C"]
    vectorizer = TfidfVectorizer(analyzer=featurizer.tokens, sublinear_tf=True)
    x_train = vectorizer.fit_transform([t for t, _ in TRAIN])
    svc = LinearSVC(C=chosen_c, random_state=42).fit(x_train, [label for _, label in TRAIN])
    expected = svc.decision_function(vectorizer.transform(TEXTS))
    ours = linear.predictor.logits(TEXTS) * float(encoder.temperature)
    order = [linear.labels.index(c) for c in svc.classes_]
    np.testing.assert_allclose(ours[:, order], expected, atol=1e-4)
    assert linear.evaluate(TEST, latency=False)["accuracy"] == 1.0
    assert linear.train_result.extra["fit"]["temperature"] > 0


def test_linear_never_truncates_a_document(linear) -> None:
    filler = " ".join(["the"] * 5000)
    long_text = f"{filler} {' '.join(CLASS_WORDS['weather'][:4])}"  # the evidence is at the very end
    assert linear.predict([long_text])[0]["label"] == "weather"
    assert linear.predictor.featurizer.truncation([long_text])["cut"] == 0


def test_binary_linear_model_gives_sigmoid_probabilities() -> None:
    two = [(t, label) for t, label in TRAIN if label != "sports"]
    model = textcls.TextClassifier(model="linear", **{"model.encoder.params.C": 1.0}, **FAST)
    assert model.config.model.encoder.params == {"C": 1.0}
    model.fit(two, [(t, label) for t, label in VALID if label != "sports"], progress=False)
    probabilities = model.predict_proba(["rain and snow", "guitar song"])
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(1), 1)
    assert model.predict(["rain and snow"])[0]["label"] == "weather"


@pytest.mark.parametrize("which", ["linear", "fasttext_model"])
def test_save_reload_and_every_backend_agree(which, request, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from textcls.inference.export import export_model

    classifier = request.getfixturevalue(which)
    classifier.save(tmp_path / which)
    texts = [*TEXTS, "", "   ", " ".join(["goal"] * 3000)]
    torch_scores = classifier.predict_proba(texts)
    reloaded = textcls.load(tmp_path / which)
    np.testing.assert_array_equal(reloaded.predict_proba(texts), torch_scores)
    assert np.isfinite(torch_scores).all()
    valid = tmp_path / "valid.txt"
    valid.write_text("".join(f"{t}\t{label}\n" for t, label in VALID), encoding="utf-8")
    export_model(tmp_path / which, quantize="int8", valid=valid, force=True)
    for backend in ("torch-int8", "onnx", "onnx-int8", "numpy"):
        scores = textcls.load(tmp_path / which, backend=backend).predict_proba(texts)
        assert scores.shape == torch_scores.shape
        if backend in ("onnx", "numpy"):
            np.testing.assert_allclose(scores, torch_scores, atol=1e-4)  # float32 sums, 3000 tokens
        agree = (scores.argmax(1) == torch_scores.argmax(1)).mean()
        assert agree >= 0.9, backend


def test_fasttext_hashes_bigrams_into_buckets_after_the_vocabulary(fasttext_model) -> None:
    featurizer = fasttext_model.predictor.featurizer
    vocab = featurizer.vocab
    ids = featurizer.encode(["rain snow"])[0]
    bigram = len(vocab) + zlib.crc32(b"rain snow") % 1000  # stable across processes (not hash())
    assert ids == [vocab.index["rain"], vocab.index["snow"], bigram]
    embedding = fasttext_model.predictor.model.embedder.embedding
    assert embedding.num_embeddings == len(vocab) + 1000 and embedding.sparse
    assert fasttext_model.evaluate(TEST, latency=False)["accuracy"] >= 0.9


KOREAN = {"music": "노래를", "sports": "경기에서", "weather": "비가"}  # one particle-carrying word a class


def korean(examples: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The synthetic texts in Hangul: each class word becomes the class's Korean word plus the
    English word's letters spelt in Hangul syllables (so words differ, but share n-grams)."""
    syllables = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허"
    spell = {
        w: "".join(syllables[ord(c) % len(syllables)] for c in w) for ws in CLASS_WORDS.values() for w in ws
    }
    return [(" ".join(f"{spell[w]}{KOREAN[y][-1]}" for w in t.split()), y) for t, y in examples]


def test_fasttext_on_korean_adds_character_ngrams_and_every_backend_reads_them(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from textcls.inference.export import export_model

    options = {"vectors": "random", "vectors_dim": 16, "ngram_buckets": 1000, "epochs": 3, **FAST}
    out = tmp_path / "ko"
    classifier = textcls.TextClassifier(model="fasttext", **options)
    assert classifier.config.model.tokenizer.char_ngrams == "auto"
    classifier.fit(korean(TRAIN), korean(VALID), out_dir=out, progress=False)
    assert classifier.config.model.tokenizer.char_ngrams == [2, 3]  # resolved and saved
    texts = [t for t, _ in korean(TEST)] + ["처음보는단어들뿐"]
    featurizer = classifier.predictor.featurizer
    assert len(featurizer.encode(texts[:1])[0]) > 2 * len(texts[0].split())  # words, bigrams and more
    export_model(out)
    expected = classifier.predict_proba(texts)
    for backend in ("onnx", "numpy"):
        np.testing.assert_allclose(
            textcls.load(out, backend=backend).predict_proba(texts), expected, atol=1e-5
        )
    resumed = textcls.TextClassifier(model="fasttext", **{**options, "epochs": 4})
    resumed.fit(korean(TRAIN), korean(VALID), out_dir=out, resume=True, progress=False)  # auto = saved
    assert resumed.config.model.tokenizer.char_ngrams == [2, 3]
    english = textcls.TextClassifier(model="fasttext", **options).fit(TRAIN, VALID, progress=False)
    assert english.config.model.tokenizer.char_ngrams is None


def test_sparse_embeddings_need_sgd() -> None:
    with pytest.raises(ConfigError, match="sgd"):
        textcls.TextClassifier(
            model="fasttext", optimizer="adamw", vectors="random", vectors_dim=8, **FAST
        ).fit(TRAIN, VALID, progress=False)


def test_max_length_auto_follows_the_data() -> None:
    long_train = [(" ".join([text] * 12), label) for text, label in TRAIN]  # ~66 words each
    classifier = textcls.TextClassifier(model="cnn", vectors="random", vectors_dim=8, epochs=1, **FAST)
    assert classifier.config.model.tokenizer.max_length == "auto"
    classifier.fit(long_train, VALID, progress=False)
    lengths = [len(classifier.predictor.featurizer.words(t)) for t, _ in long_train]
    chosen = classifier.config.model.tokenizer.max_length
    assert chosen == int(np.ceil(np.percentile(lengths, 95)))
    assert classifier.train_result.extra["max_length"] == chosen
    short = textcls.TextClassifier(model="cnn", vectors="random", vectors_dim=8, epochs=1, **FAST)
    assert short.fit(TRAIN, VALID, progress=False).config.model.tokenizer.max_length == 16  # the floor


@pytest.mark.parametrize("model", ["linear", "fasttext"])
def test_cli_end_to_end(model, synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / model
    args = ["train", "--data", str(synthetic_dir), "--model", model, "--out", str(out), "--no-progress"]
    args += ["--no-tensorboard", "--cpu"] + (
        ["--vectors", "random", "--ngram-buckets", "500", "--epochs", "20"] if model == "fasttext" else []
    )
    assert main(args) == 0
    assert "test (" in capsys.readouterr().out
    assert main(["predict", str(out), "rain and snow", "--json"]) == 0
    assert '"label": "weather"' in capsys.readouterr().out


def test_numpy_backend_refuses_other_models(synthetic_dir: Path, tmp_path: Path) -> None:
    from textcls.errors import ModelLoadError

    textcls.TextClassifier(model="cnn", vectors="random", vectors_dim=8, epochs=1, **FAST).fit(
        synthetic_dir, out_dir=tmp_path / "cnn", progress=False
    )
    with pytest.raises(ModelLoadError, match="bag-of-n-gram models"):
        textcls.load(tmp_path / "cnn", backend="numpy")
