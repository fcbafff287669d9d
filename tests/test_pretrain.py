"""textcls pretrain: the masking arithmetic, the masked-LM head, the biLM (leak test, loss),
the scalar mix, resume, and fine-tuning / reload / ONNX of models that read a pretrained biLM
or mix a transformer's layers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from conftest import CLASS_WORDS, SMALL_ENCODER_PARAMS, TINY, make_examples, write_tsv
from textcls.config import BiLMConfig
from textcls.embeddings.bilm import BiLM, byte_table, reverse_padded
from textcls.embeddings.mix import ScalarMix
from textcls.errors import ConfigError
from textcls.pretraining import pretrain
from textcls.pretraining.masking import IGNORE, mask_tokens

TINY_BILM = {
    "bilm.word_dim": 16,
    "bilm.projection_dim": 16,
    "bilm.hidden_size": 16,
    "bilm.layers": 2,
    "bilm.dropout": 0.0,
    "min_count": 1,
    "max_length": 16,
    "batch_size": 16,
    "track": "none",
    "log_steps": 2,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Unlabeled texts (one a line) drawn from the synthetic classes' words."""
    path = tmp_path_factory.mktemp("corpus") / "unlabeled.txt"
    path.write_text("".join(f"{text}\n" for text, _ in make_examples(60, seed=7)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bilm_dir(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("bilm") / "bilm"
    pretrain([corpus], out, model="bilm", epochs=3, progress=False, **TINY_BILM, **{"bilm.char_cnn": True})
    return out


# ------------------------------------------------------------------------------ masking
def test_masking_rates_and_the_80_10_10_rule():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (200, 100), generator=generator)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -1] = False  # [CLS] ... [SEP]
    maskable[:, 80:] = False  # padding
    inputs, labels = mask_tokens(ids, maskable, mask_id=4, vocab_size=1000, generator=generator)
    chosen = labels != IGNORE
    assert abs(chosen.sum() / maskable.sum() - 0.15) < 0.01
    assert not chosen[~maskable].any(), "a special token or padding was chosen"
    assert torch.equal(inputs[~maskable], ids[~maskable])
    assert torch.equal(labels[chosen], ids[chosen])
    masked = (inputs == 4) & chosen
    kept = (inputs == ids) & chosen
    replaced = chosen & ~masked & ~kept
    n = chosen.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02  # (a random draw can equal the original: rare)
    assert abs(replaced.sum().item() / n - 0.1) < 0.02


def test_whole_word_masking_chooses_every_piece_of_a_word():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 1000, (300, 30), generator=generator)
    # words of 1 to 3 pieces: word k covers pieces with word id k; -1 at the special ends
    rows = []
    for _ in range(300):
        words, k = [-1], 0
        while len(words) < 29:
            words += [k] * min(int(torch.randint(1, 4, (1,), generator=generator)), 29 - len(words))
            k += 1
        rows.append([*words, -1])
    word_ids = torch.tensor(rows)
    maskable = word_ids >= 0
    _, labels = mask_tokens(ids, maskable, 4, 1000, word_ids=word_ids, generator=generator)
    chosen = labels != IGNORE
    assert not chosen[~maskable].any()
    for row in range(300):
        for word in word_ids[row].unique().tolist():
            if word < 0:
                continue
            pieces = chosen[row][word_ids[row] == word]
            assert pieces.all() or not pieces.any(), "a word was partly chosen"
    words_chosen = sum(
        chosen[r][word_ids[r] == w][0].item()
        for r in range(300)
        for w in word_ids[r].unique().tolist()
        if w >= 0
    )
    words_total = sum(int((word_ids[r].unique() >= 0).sum()) for r in range(300))
    assert abs(words_chosen / words_total - 0.15) < 0.015  # the rate is over words, not pieces


# ------------------------------------------------------------------------------ masked LM
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tiny_backbones import build

    return build("bert", tmp_path_factory.mktemp("tiny-bert") / "bert")


def test_a_backbone_without_mlm_head_gets_a_tied_one_and_an_mlm_step_lowers_the_loss(tiny_bert):
    from textcls.pretraining import pretrain_config
    from textcls.pretraining.tasks import MaskedLM

    texts = ["play some jazz by miles davis", "will it rain in paris tomorrow"] * 16
    task = MaskedLM(pretrain_config(str(tiny_bert), max_length=16, seed=0), texts)
    assert task.head_created and task.tied
    model = task.model
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    torch.manual_seed(0)
    batch = task.collate(task.train_items[:16])
    before = task.loss(batch)[0].item()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(10):
        optimizer.zero_grad()
        task.loss(batch)[0].backward()
        optimizer.step()
    assert task.loss(batch)[0].item() < before - 1.0
    # the decoder is still the word embedding table after training
    assert torch.equal(model.get_output_embeddings().weight, model.get_input_embeddings().weight)


def test_mlm_output_is_a_backbone_that_train_fine_tunes(tiny_bert, tmp_path, synthetic_dir):
    import textcls

    texts = tmp_path / "texts.txt"
    texts.write_text((synthetic_dir / "train.txt").read_text(encoding="utf-8"), encoding="utf-8")  # labelled
    out = tmp_path / "tapt"
    report = pretrain(
        [texts],
        out,
        model=str(tiny_bert),
        max_steps=4,
        batch_size=8,
        max_length=16,
        whole_word=True,
        track="none",
        progress=False,
        log_steps=2,
        save_steps=2,
    )
    assert report["texts"] == 90 and report["steps"] == 4 and report["mlm_head_created"]
    assert (out / "pretrain_curves.png").stat().st_size > 0 and not (out / "checkpoint").exists()
    train = [h for h in report["history"] if h["split"] == "train"]
    assert [h["step"] for h in train] == [2, 4] and all(h["tokens_per_s"] > 0 for h in train)
    # held out before the first step (the untrained head's figures), then at every save
    assert [h["step"] for h in report["history"] if h["split"] == "valid"] == [0, 2, 4]
    assert report["first_valid"]["step"] == 0 and report["valid"]["step"] == 4
    assert report["first_valid"]["loss"] > report["valid"]["loss"]
    classifier = textcls.TextClassifier(model=str(out), encoder="mean", epochs=1, tensorboard=False, cpu=True)
    classifier.fit(synthetic_dir, out_dir=tmp_path / "model", progress=False)
    result = json.loads((tmp_path / "model" / "train_result.json").read_text())
    assert result["pretrained"]["directory"] == str(out.resolve())
    assert result["pretrained"]["steps"] == 4


# ------------------------------------------------------------------------------ the biLM
def _bilm(**changes) -> BiLM:
    config = BiLMConfig(
        word_dim=8, projection_dim=8, hidden_size=8, layers=2, dropout=0.0, softmax="full", **changes
    )
    torch.manual_seed(0)
    model = BiLM(config, 50)
    model.fill_char_table([f"w{i}" for i in range(50)])
    return model.eval()


@pytest.mark.parametrize("char_cnn", [False, True])
def test_neither_direction_sees_the_token_it_predicts(char_cnn):
    model = _bilm(char_cnn=char_cnn, max_chars=6, char_filters=[[1, 4], [2, 4]])
    ids = torch.randint(2, 50, (3, 10))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 7:] = False  # a shorter row: its backward direction starts at its own last token
    _, forward, backward = model.directions(ids, mask)
    t = 4
    changed = ids.clone()
    changed[:, t + 1 :] = torch.randint(2, 50, changed[:, t + 1 :].shape)  # the future
    _, forward2, backward2 = model.directions(changed, mask)
    for a, b in zip(forward, forward2, strict=True):  # forward at <= t predicts <= t+1: unchanged
        assert torch.allclose(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(backward[-1][0, : t + 1], backward2[-1][0, : t + 1])  # it reads the future
    changed = ids.clone()
    changed[:, :t] = torch.randint(2, 50, changed[:, :t].shape)  # the past
    _, forward3, backward3 = model.directions(changed, mask)
    for a, b in zip(backward, backward3, strict=True):  # backward at >= t predicts >= t-1: unchanged
        assert torch.allclose(a[0, t:], b[0, t:]) and torch.allclose(a[1, t:7], b[1, t:7])
    assert not torch.allclose(forward[-1][0, t:], forward3[-1][0, t:])


def test_reverse_padded_reverses_each_row_within_its_length():
    x = torch.arange(8.0).reshape(2, 4, 1)
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_byte_table_and_the_lm_loss_falls_when_trained():
    assert byte_table(["<pad>", "가"], 6).tolist()[1] == [1, 0xEA + 3, 0xB0 + 3, 0x80 + 3, 2, 0]
    model = _bilm().train()
    ids = torch.tensor([[2, 3, 4, 5, 6, 7]] * 4)
    mask = torch.ones_like(ids, dtype=torch.bool)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first, stats = model.lm_loss(ids, mask, accuracy=True)
    assert stats["targets"] == 2 * 4 * 5  # both directions, five neighbours each
    for _ in range(60):
        optimizer.zero_grad()
        model.lm_loss(ids, mask)[0].backward()
        optimizer.step()
    last, stats = model.lm_loss(ids, mask, accuracy=True)
    assert last.item() < first.item() / 2 and stats["correct"] > 0.8 * stats["scored"]


def test_scalar_mix_weights_sum_to_one_and_gamma_is_learned_or_fixed():
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.scalars.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.gamma.fill_(2.0)
    weights = mix.weights()
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    layers = [torch.full((1, 2), float(v)) for v in (1, 2, 3)]
    expected = 2.0 * sum(w * v for w, v in zip(weights.tolist(), (1, 2, 3), strict=True))
    assert torch.allclose(mix(layers), torch.full((1, 2), expected))
    fixed = ScalarMix(3, gamma=False)
    assert "gamma" not in dict(fixed.named_parameters()) and fixed.gamma.item() == 1.0
    with pytest.raises(ValueError):
        mix(layers[:2])


def _texts(corpus) -> list[str]:
    return corpus.read_text(encoding="utf-8").splitlines()


def test_adaptive_softmax_learns_and_a_saved_bilm_reloads_identically(corpus, tmp_path):
    from textcls.embeddings.bilm import load_bilm
    from textcls.pretraining import pretrain_config
    from textcls.pretraining.tasks import BiLMObjective

    # 32 tokens (30 words, <pad>, <unk>) are far below default_cutoffs' 4,000: cutoffs force the path
    config = pretrain_config("bilm", **TINY_BILM, **{"bilm.cutoffs": [8, 20]})
    torch.manual_seed(0)
    task = BiLMObjective(config, _texts(corpus))
    model = task.model
    assert len(task.vocab) == 32
    assert isinstance(model.softmax, torch.nn.AdaptiveLogSoftmaxWithLoss)
    assert model.softmax.cutoffs == [8, 20, 32] and model.config.softmax == "adaptive"
    batch = task.collate(task.train_items[:32])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss, stats = task.loss(batch, accuracy=True)
        assert torch.isfinite(loss) and stats["targets"] > 0 and 0 <= stats["correct"] <= stats["scored"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] - 0.5
    # every tail cluster's weights learn (targets in the tail go through them)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.softmax.tail.parameters())

    task.save(tmp_path / "adaptive")
    architecture, _, vocab, state = load_bilm(tmp_path / "adaptive")
    assert architecture.softmax == "adaptive" and architecture.cutoffs == [8, 20]
    assert vocab.tokens == task.vocab.tokens
    reloaded = BiLM(architecture, len(vocab))
    reloaded.load_state_dict(state)  # strict: the head and tail clusters are all there
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(
            task.loss(batch)[0], reloaded.lm_loss(batch["input_ids"], batch["attention_mask"])[0]
        )
        states = torch.randn(5, architecture.projection_dim)
        assert torch.equal(model.softmax.log_prob(states), reloaded.softmax.log_prob(states))


def test_pretraining_with_adaptive_softmax_lowers_the_held_out_loss(corpus, tmp_path):
    settings = {**TINY_BILM, "bilm.cutoffs": [8, 20], "epochs": 3, "lr": 1e-2}
    report = pretrain([corpus], tmp_path / "adaptive", model="bilm", progress=False, **settings)
    assert report["architecture"]["softmax"] == "adaptive" and report["architecture"]["cutoffs"] == [8, 20]
    losses = [h["loss"] for h in report["history"]]
    assert all(np.isfinite(losses)) and all(0 <= h["accuracy"] <= 1 for h in report["history"])
    assert report["valid"]["loss"] < report["first_valid"]["loss"] - 0.2  # uniform: log 32 = 3.47
    train = [h["loss"] for h in report["history"] if h["split"] == "train"]
    assert train[-1] < train[0] - 0.2


def test_bilm_word_embeddings_start_from_a_vectors_file(corpus, tmp_path):
    from textcls.embeddings.bilm import load_bilm
    from textcls.pretraining import pretrain_config
    from textcls.pretraining.tasks import BiLMObjective

    rng = np.random.default_rng(0)
    known = {w: rng.normal(size=6).round(4) for w in ("song", "rain", "goal", "zebra")}  # no zebra in corpus
    path = tmp_path / "vectors.txt"
    path.write_text(
        "".join(f"{w} {' '.join(str(v) for v in vector)}\n" for w, vector in known.items()), encoding="utf-8"
    )
    config = pretrain_config("bilm", **TINY_BILM, vectors=str(path))  # word_dim 16 gives way to the file's 6
    task = BiLMObjective(config, _texts(corpus))
    words = task.model.token.words.weight.detach()
    assert task.model.config.word_dim == 6 and words.shape == (len(task.vocab), 6)
    assert task.model.config.vectors == str(path)
    assert "zebra" not in task.vocab
    for word in ("song", "rain", "goal"):
        assert torch.equal(words[task.vocab.index[word]], torch.tensor(known[word], dtype=torch.float32))
    assert torch.count_nonzero(words[0]) == 0  # padding
    others = [i for w, i in task.vocab.index.items() if w not in known and i > 0]
    assert others and torch.count_nonzero(words[others]) > 0  # words the file lacks: random, not zero
    task.save(tmp_path / "glove-bilm")
    architecture, _, vocab, state = load_bilm(tmp_path / "glove-bilm")
    assert architecture.word_dim == 6 and architecture.vectors == str(path)
    assert torch.equal(state["token.words.weight"][vocab.index["rain"]], words[task.vocab.index["rain"]])


# ------------------------------------------------------------------------------ resume
def test_resume_continues_the_same_run(corpus, tmp_path):
    from safetensors.torch import load_file

    settings = {**TINY_BILM, "epochs": 2, "save_steps": 2, "log_steps": 1}
    whole = tmp_path / "whole"
    pretrain([corpus], whole, model="bilm", progress=False, **settings)

    def interrupt(step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        pretrain([corpus], cut, model="bilm", progress=False, on_step=interrupt, **settings)
    assert json.loads((cut / "pretrain.json").read_text())["status"].startswith("interrupted")
    with pytest.raises(ConfigError, match="--resume"):  # an unfinished run is never overwritten
        pretrain([corpus], cut, model="bilm", progress=False, **settings)
    with pytest.raises(ConfigError, match="different settings"):
        pretrain([corpus], cut, model="bilm", progress=False, resume=True, **{**settings, "lr": 0.5})
    report = pretrain([corpus], cut, model="bilm", progress=False, resume=True, **settings)
    expected = json.loads((whole / "pretrain.json").read_text())
    assert report["steps"] == expected["steps"]
    assert [h["loss"] for h in report["history"]] == pytest.approx([h["loss"] for h in expected["history"]])
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)


def test_mlm_resume_continues_the_same_run(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{text}\n" for text, _ in make_examples(8, seed=5)), encoding="utf-8")
    # 24 windows: 1 held out, 23 in 3 batches of 8 an epoch; 2 epochs = 6 steps
    settings = {
        "model": str(tiny_bert),
        "epochs": 2,
        "batch_size": 8,
        "max_length": 16,
        "save_steps": 2,
        "log_steps": 1,
        "track": "none",
        "progress": False,
    }
    whole = pretrain([texts], tmp_path / "whole", **settings)
    assert whole["steps"] == 6

    def interrupt(step: int) -> None:
        if step == 5:  # after the checkpoint at step 4, the first batch of epoch 2
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        pretrain([texts], cut, on_step=interrupt, **settings)
    state = json.loads((cut / "checkpoint" / "training_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch"]) == (4, 2, 1)
    report = pretrain([texts], cut, resume=True, **settings)
    assert report["steps"] == whole["steps"] and report["tokens"] == whole["tokens"]
    assert [(h["step"], h["split"]) for h in report["history"]] == [
        (h["step"], h["split"]) for h in whole["history"]
    ]
    # masks and dropout come from the restored RNG: the same losses and weights as uninterrupted
    assert [h["loss"] for h in report["history"]] == pytest.approx([h["loss"] for h in whole["history"]])
    assert [h["accuracy"] for h in report["history"]] == pytest.approx(
        [h["accuracy"] for h in whole["history"]]
    )
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not (cut / "checkpoint").exists() and report["status"] == "finished"


def _accumulation_runs(corpus, tmp_path, first, second, **settings):
    """Two biLM runs that differ only in batch size and accumulation: their reports and weights."""
    from safetensors.torch import load_file

    results = []
    for name, (batch_size, grad_accum) in (("a", first), ("b", second)):
        run = {**TINY_BILM, "log_steps": 1, **settings, "batch_size": batch_size, "grad_accum": grad_accum}
        report = pretrain([corpus], tmp_path / name, model="bilm", progress=False, **run)
        results.append((report, load_file(str(tmp_path / name / "model.safetensors"))))
    return results


def _same_run(a, b):
    (first, first_weights), (second, second_weights) = a, b
    assert first["steps"] == second["steps"] == first["planned_steps"]
    assert first["tokens"] == second["tokens"]
    assert [h["step"] for h in first["history"]] == [h["step"] for h in second["history"]]
    assert [h["loss"] for h in first["history"]] == pytest.approx(
        [h["loss"] for h in second["history"]], rel=1e-5
    )
    assert first_weights.keys() == second_weights.keys()
    for key in first_weights:
        assert torch.allclose(first_weights[key], second_weights[key], atol=1e-5), key


def test_gradient_accumulation_equals_a_batch_twice_as_large(tmp_path):
    # 25 texts of 8 words: 24 windows to train on, every one with the same number of targets,
    # so the mean over two batches of 12 is the mean over one batch of 24
    rng = np.random.default_rng(0)
    words = sorted({w for group in CLASS_WORDS.values() for w in group})
    corpus = tmp_path / "eight.txt"
    corpus.write_text("".join(" ".join(rng.choice(words, 8)) + "\n" for _ in range(25)), encoding="utf-8")
    accumulated, plain = _accumulation_runs(corpus, tmp_path, (12, 2), (24, 1), epochs=4)
    assert accumulated[0]["steps"] == 4  # one optimizer step an epoch
    _same_run(accumulated, plain)
    # against a run without accumulation at the small batch: twice the steps, other weights
    single = pretrain(
        [corpus], tmp_path / "c", model="bilm", progress=False, **{**TINY_BILM, "batch_size": 12, "epochs": 4}
    )
    assert single["steps"] == 8


def test_accumulation_weighs_each_batch_by_its_targets(tmp_path):
    # 25 texts of 2-15 words: 24 windows of unequal lengths, so two batches of 12 hold different
    # numbers of next-token targets. Together they are the one batch of 24: the accumulated step
    # must be the mean over all their targets (a mean of the two batch means would weigh the
    # shorter batch's targets more)
    rng = np.random.default_rng(1)
    words = sorted({w for group in CLASS_WORDS.values() for w in group})
    lengths = rng.integers(2, 16, size=25)
    corpus = tmp_path / "uneven.txt"
    corpus.write_text("".join(" ".join(rng.choice(words, n)) + "\n" for n in lengths), encoding="utf-8")
    accumulated, plain = _accumulation_runs(corpus, tmp_path, (12, 2), (24, 1), epochs=4, grad_clip=0.0)
    assert accumulated[0]["steps"] == 4
    _same_run(accumulated, plain)


def test_a_short_last_accumulation_weighs_its_batch_fully(tmp_path):
    # 24 identical windows: any batch has the same gradient, so only how the batches are weighed
    # counts. Batches of 8 with accumulation 2 make steps of 2 + 1 batches an epoch; batches of
    # 16 make steps of 16 + 8 windows: the one-batch step must be a whole step, not half of one.
    corpus = tmp_path / "same.txt"
    corpus.write_text("song album guitar band rain snow goal match\n" * 25, encoding="utf-8")
    accumulated, plain = _accumulation_runs(corpus, tmp_path, (8, 2), (16, 1), epochs=2, grad_clip=0.0)
    assert accumulated[0]["steps"] == 4
    _same_run(accumulated, plain)


def test_pretraining_writes_tensorboard_scalars(corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    settings = {**TINY_BILM, "track": "tensorboard", "log_steps": 2, "save_steps": 4}
    report = pretrain([corpus], out, model="bilm", progress=False, **settings)
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    train_tags = {f"pretrain/{k}" for k in ("loss", "perplexity", "accuracy", "lr", "tokens_per_s")}
    valid_tags = {f"pretrain_valid/{k}" for k in ("loss", "perplexity", "accuracy")}
    assert train_tags | valid_tags | {"pretrain_seconds", "pretrain_tokens"} <= tags
    for split, prefix in (("train", "pretrain"), ("valid", "pretrain_valid")):
        logged = [h for h in report["history"] if h["split"] == split]
        for name in ("loss", "perplexity", "accuracy"):
            scalars = accumulator.Scalars(f"{prefix}/{name}")
            assert [s.step for s in scalars] == [h["step"] for h in logged]
            assert [s.value for s in scalars] == pytest.approx([h[name] for h in logged], rel=1e-6)
    steps = report["steps"]
    assert [s.step for s in accumulator.Scalars("pretrain/loss")] == list(range(2, steps + 1, 2))
    assert [s.step for s in accumulator.Scalars("pretrain_valid/loss")] == [
        0,
        4,
        8,
        *([steps] * (steps % 4 > 0)),
    ]
    assert accumulator.Scalars("pretrain_tokens")[0].value == report["tokens"]


# ------------------------------------------------------------------------------ fine-tuning
def _small_cnn(**extra):
    return {k: v for k, v in TINY.items() if k not in ("vectors", "vectors_dim", "model")} | extra


def test_cnn_over_a_bilm_trains_reloads_and_exports(bilm_dir, synthetic_dir, tmp_path):
    import textcls
    from textcls.inference.export import export_model

    out = tmp_path / "cnn-bilm"
    classifier = textcls.TextClassifier(model="cnn", **_small_cnn(embedder=f"bilm:{bilm_dir}", epochs=10))
    classifier.fit(synthetic_dir, out_dir=out, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["bilm"]["char_cnn"] is True  # the architecture travels with the model
    report = classifier.evaluate(synthetic_dir / "test.txt", latency=False)
    assert report["accuracy"] > 0.8  # three classes: a coin toss is 0.33
    model = classifier.predictor.model
    frozen = [p.requires_grad for p in model.embedder.bilm.parameters()]
    assert not any(frozen) and model.embedder.mix.gamma.requires_grad
    pretrained = json.loads((bilm_dir / "pretrain.json").read_text())
    assert json.loads((out / "train_result.json").read_text())["pretrained"]["steps"] == pretrained["steps"]
    texts = ["a song by the band", "rain and wind and a new unseenword"]
    expected = classifier.predict_proba(texts)
    reloaded = textcls.load(out)
    assert np.allclose(reloaded.predict_proba(texts), expected, atol=1e-6)
    export_model(out)
    onnx = textcls.load(out, backend="onnx")
    assert np.allclose(onnx.predict_proba(texts), expected, atol=1e-4)
    # retraining over the exported directory: the stale export is dropped, the new biLM model serves
    again = textcls.TextClassifier(
        model="cnn", **_small_cnn(embedder=f"bilm:{bilm_dir}", gamma=False, epochs=1)
    )
    again.fit(synthetic_dir, out_dir=out, progress=False)
    assert not (out / "model.onnx").exists()
    assert "gamma" not in dict(again.predictor.model.embedder.mix.named_parameters())


def test_fine_tuned_bilm_learns_and_words_new_to_it_get_rows(bilm_dir, synthetic_dir, tmp_path):
    from safetensors.torch import load_file

    import textcls

    extra = tmp_path / "data"
    extra.mkdir()
    examples = [(f"{text} zzznewword", label) for text, label in make_examples(20, seed=3)]
    write_tsv(extra / "train.txt", examples)
    write_tsv(extra / "valid.txt", make_examples(5, seed=4))
    out = tmp_path / "tuned"
    classifier = textcls.TextClassifier(
        model="lstm",
        **_small_cnn(embedder=f"bilm:{bilm_dir}", freeze_bilm=False, encoder_params={"hidden_size": 8}),
    )
    classifier.fit(extra, out_dir=out, progress=False)
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert "zzznewword" in vocab and vocab[:2] == ["<pad>", "<unk>"]
    before = load_file(str(bilm_dir / "model.safetensors"))["token.words.weight"]
    after = load_file(str(out / "model.safetensors"))["embedder.bilm.token.words.weight"]
    assert after.shape[0] == before.shape[0] + 1
    assert not torch.allclose(after[: before.shape[0]], before), "a fine-tuned biLM should change"


def test_bilm_joined_to_its_own_word_embedding_reloads_and_exports(bilm_dir, synthetic_dir, tmp_path):
    from safetensors.torch import load_file

    import textcls
    from textcls.inference.export import export_model

    out = tmp_path / "joined"
    classifier = textcls.TextClassifier(
        model="cnn", **_small_cnn(embedder=f"bilm:{bilm_dir}", bilm_word_dim=6, epochs=3)
    )
    classifier.fit(synthetic_dir, out_dir=out, progress=False)
    embedder = classifier.predictor.model.embedder
    bilm_dim = embedder.bilm.output_dim
    assert embedder.output_dim == bilm_dim + 6 and embedder.words.weight.requires_grad
    features = {"input_ids": torch.tensor([[2, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    joined = embedder(dict(features))["token_embeddings"]
    assert joined.shape == (1, 3, bilm_dim + 6)
    assert torch.equal(joined[0, :, bilm_dim:], embedder.words.weight[[2, 3, 0]])  # the words, after the mix
    saved = load_file(str(out / "model.safetensors"))["embedder.words.weight"]
    assert saved.shape[1] == 6 and torch.count_nonzero(saved[0]) == 0  # padding stays zero
    texts = ["a song by the band", "rain and wind"]
    expected = classifier.predict_proba(texts)
    assert np.allclose(textcls.load(out).predict_proba(texts), expected, atol=1e-6)
    export_model(out)
    assert np.allclose(textcls.load(out, backend="onnx").predict_proba(texts), expected, atol=1e-4)


def test_the_joined_word_embedding_can_start_from_the_bilms_own_words(bilm_dir, synthetic_dir, tmp_path):
    from safetensors.torch import load_file

    import textcls

    pretrained = load_file(str(bilm_dir / "model.safetensors"))["token.words.weight"]
    settings = _small_cnn(embedder=f"bilm:{bilm_dir}", bilm_word_init="bilm", epochs=1, lr=1e-12)
    classifier = textcls.TextClassifier(model="cnn", **settings)
    classifier.fit(synthetic_dir, out_dir=tmp_path / "m", progress=False)
    words = classifier.predictor.model.embedder.words.weight.detach()
    assert classifier.config.model.embedding.bilm_word_dim == pretrained.shape[1]  # the size follows
    assert torch.allclose(words[1 : len(pretrained)], pretrained[1:], atol=1e-6)  # lr ~0: still the copy
    assert torch.count_nonzero(words[0]) == 0
    with pytest.raises(ConfigError, match="--bilm-word-dim"):
        textcls.TextClassifier(model="cnn", **{**settings, "bilm_word_dim": 3}).fit(synthetic_dir)
    with pytest.raises(ConfigError, match="--embedder bilm"):  # without a biLM: an error, not ignored
        textcls.TextClassifier(model="cnn", **_small_cnn(bilm_word_dim=8)).fit(synthetic_dir)


def test_bad_embedder_and_bilm_with_linear_are_clear_errors(tmp_path, synthetic_dir, bilm_dir):
    import textcls

    with pytest.raises(ConfigError, match="bilm:DIR"):
        textcls.TextClassifier(model="cnn", embedder="elmo")
    with pytest.raises(ConfigError, match="pretrain"):
        textcls.TextClassifier(model="cnn", **_small_cnn(embedder=f"bilm:{tmp_path}")).fit(synthetic_dir)
    with pytest.raises(ConfigError, match="n-grams"):
        textcls.TextClassifier(model="fasttext", embedder=f"bilm:{bilm_dir}", cpu=True).fit(synthetic_dir)


@pytest.mark.parametrize("encoder", ["mean", "cnn", "densenet-cnn"])
def test_layer_mix_over_a_transformer_trains_reloads_and_exports(encoder, tiny_bert, synthetic_dir, tmp_path):
    from safetensors.torch import load_file

    import textcls
    from textcls.inference.export import export_model

    out = tmp_path / "mix"
    settings = {
        "encoder": encoder,
        "encoder_params": SMALL_ENCODER_PARAMS[encoder],
        "layer_mix": True,
        "epochs": 2,
        "tensorboard": False,
        "cpu": True,
        "lr": 1e-2,
    }
    classifier = textcls.TextClassifier(model=str(tiny_bert), **settings)
    classifier.fit(synthetic_dir, out_dir=out, progress=False)
    assert json.loads((out / "config.json").read_text())["model"]["backbone"]["layer_mix"] is True
    mix = classifier.predictor.model.embedder.mix
    assert mix.scalars.numel() == 5  # the embeddings and 4 layers
    assert not torch.allclose(mix.scalars, torch.zeros(5)), "the mix weights are trained"
    assert mix.gamma.requires_grad and mix.gamma.item() != 1.0
    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(saved["embedder.mix.scalars"], mix.scalars.detach().cpu())
    assert torch.equal(saved["embedder.mix.gamma"], mix.gamma.detach().cpu())
    texts = ["a song by the band", "rain tomorrow", "the team won the match in the rain"]
    expected = classifier.predictor.logits(texts)
    reloaded = textcls.load(out)
    assert torch.equal(reloaded.predictor.model.embedder.mix.scalars, mix.scalars.detach())
    assert np.allclose(reloaded.predictor.logits(texts), expected, atol=1e-6)
    export_model(out)
    assert np.allclose(textcls.load(out, backend="onnx").predictor.logits(texts), expected, atol=1e-4)


def test_layer_mix_under_the_cls_head_is_an_error(tiny_bert, synthetic_dir):
    import textcls

    with pytest.raises(ConfigError, match="layer-mix"):
        textcls.TextClassifier(model=str(tiny_bert), layer_mix=True, epochs=1, cpu=True).fit(synthetic_dir)


def test_cli_pretrain_then_train_with_the_bilm(corpus, synthetic_dir, tmp_path, capsys):
    from textcls.cli import main

    out = tmp_path / "cli-bilm"
    code = main(
        [
            "pretrain",
            "--model",
            "bilm",
            "--data",
            str(corpus),
            "--out",
            str(out),
            "--word-dim",
            "16",
            "--projection-dim",
            "16",
            "--hidden-size",
            "16",
            "--max-length",
            "16",
            "--track",
            "none",
            "--min-count",
            "1",
            "--no-progress",
            "--set",
            "bilm.layers=1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"--embedder bilm:{out}" in printed and "next-token accuracy" in printed
    assert json.loads((out / "config.json").read_text())["bilm"]["layers"] == 1
    model = tmp_path / "cli-model"
    code = main(
        [
            "train",
            "--data",
            str(synthetic_dir),
            "--model",
            "cnn",
            "--embedder",
            f"bilm:{out}",
            "--no-gamma",
            "--epochs",
            "2",
            "--out",
            str(model),
            "--no-progress",
            "--no-tensorboard",
            "--cpu",
        ]
    )
    assert code == 0
    assert json.loads((model / "config.json").read_text())["model"]["gamma"] is False
    capsys.readouterr()
    assert main(["predict", str(model), "guitar and drum"]) == 0
    assert capsys.readouterr().out.split()[0] in CLASS_WORDS  # "<label> <score>\t<text>"
    assert main(["pretrain", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")]) == 2


def test_mlflow_links_the_fine_tuning_run_to_the_pretraining_run(corpus, synthetic_dir, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    import textcls

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "tracked-bilm"
    report = pretrain(
        [corpus], out, model="bilm", progress=False, **{**TINY_BILM, "track": "mlflow", "tracking_uri": uri}
    )
    pretrain_run = report["tracking"]["run_id"]
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(pretrain_run, "pretrain/perplexity")
    assert history and all(m.value > 0 for m in history)
    assert client.get_metric_history(pretrain_run, "pretrain/accuracy")
    classifier = textcls.TextClassifier(
        model="cnn", **_small_cnn(embedder=f"bilm:{out}", track="mlflow", tracking_uri=uri, tensorboard=True)
    )
    classifier.fit(synthetic_dir, out_dir=tmp_path / "tracked-model", progress=False)
    run_id = json.loads((tmp_path / "tracked-model" / "train_result.json").read_text())["tracking"]["run_id"]
    tags = client.get_run(run_id).data.tags
    assert tags["textcls.pretrain_run_id"] == pretrain_run and tags["textcls.stage"] == "fine-tune"
    assert client.get_run(pretrain_run).data.tags["textcls.stage"] == "pretrain"


def test_valid_fraction_help_says_windows_are_held_out_at_most_2000(capsys):
    from textcls.cli import main
    from textcls.pretraining.tasks import split_valid

    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    described = help_text.split("--valid-fraction VALID_FRACTION", 2)[-1].split(" --")[0]
    assert "windows" in described and "at most 2,000" in described and "texts" not in described
    train, valid = split_valid(list(range(200_000)), 0.02, seed=0)  # 2 % would be 4,000 windows
    assert len(valid) == 2000 and len(train) == 198_000
    assert len(split_valid(list(range(10)), 0.02, seed=0)[1]) == 1  # at least one


@pytest.mark.parametrize("cutoffs", [[8, 40], [20, 8], [0, 8]])
def test_adaptive_softmax_cutoffs_outside_the_vocabulary_are_a_clear_error(corpus, cutoffs) -> None:
    from textcls.pretraining import pretrain_config
    from textcls.pretraining.tasks import BiLMObjective

    config = pretrain_config("bilm", **TINY_BILM, **{"bilm.cutoffs": cutoffs})
    with pytest.raises(ConfigError, match=r"bilm\.cutoffs .* vocabulary size \(32\)"):
        BiLMObjective(config, _texts(corpus))
