"""The training loop's promises, each checked so that a one-line mutation fails: the loss really
is weighted / smoothed, every example is trained on every epoch, sentence pairs really use their
second text, and default tracking writes TensorBoard scalars."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CLASS_WORDS, TINY
from textcls.api import TextClassifier
from textcls.config import TrainConfig
from textcls.data.formats import Example
from textcls.training.loop import make_loss


def tiny(**changes) -> TextClassifier:
    return TextClassifier(**{**TINY, **changes})


def test_balanced_class_weights_match_scikit_learn_inside_the_loss() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0, 0, 0, 0, 1, 1, 2]
    loss_fn = make_loss(TrainConfig(class_weight="balanced"), labels, 3)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(loss_fn.weight.numpy(), expected, rtol=1e-6)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0]])
    gold = torch.tensor([0, 1, 2])
    log_p = torch.log_softmax(logits, -1)[torch.arange(3), gold]
    w = torch.tensor(expected, dtype=torch.float32)[gold]
    torch.testing.assert_close(loss_fn(logits, gold), -(w * log_p).sum() / w.sum())
    assert make_loss(TrainConfig(), labels, 3).weight is None  # no weights unless asked


def test_label_smoothing_is_the_formula() -> None:
    eps, k = 0.2, 3
    loss_fn = make_loss(TrainConfig(label_smoothing=eps), [0, 1, 2], k)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    gold = torch.tensor([0, 1])
    log_p = torch.log_softmax(logits, -1)
    target = torch.full((2, k), eps / k)
    target[torch.arange(2), gold] += 1 - eps
    torch.testing.assert_close(loss_fn(logits, gold), -(target * log_p).sum(-1).mean())


def test_unlabelled_training_texts_are_ignored_by_the_loss() -> None:
    loss_fn = make_loss(TrainConfig(), [0, 1, -1], 2)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [9.0, -9.0]])
    torch.testing.assert_close(
        loss_fn(logits, torch.tensor([0, 1, -1])), loss_fn(logits[:2], torch.tensor([0, 1]))
    )


def test_every_training_example_is_seen_every_epoch(synthetic_splits, monkeypatch) -> None:
    """No partial batch is dropped: 90 examples at batch size 16 is 5 full batches and one of 10."""
    from textcls.data import batching

    seen: list[int] = []
    original = batching.WordFeaturizer.collate

    def counting(self, items):
        seen.append(len(items))
        return original(self, items)

    monkeypatch.setattr(batching.WordFeaturizer, "collate", counting)
    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    tiny(epochs=2, batch_size=16).fit(train, valid, progress=False)
    # per epoch: the training batches (in shuffled order), then validation in one batch of up to
    # 64; after training, one more validation batch fits the calibration
    assert len(seen) == 2 * 7 + 1
    for epoch in (seen[:7], seen[7:]):
        assert sorted(epoch[:6]) == [10, 16, 16, 16, 16, 16] and sum(epoch[:6]) == len(train)
        assert epoch[6] == len(valid)


def pair_examples(n: int, seed: int) -> list[Example]:
    """The first text is the same noise for every class; only the second text tells the class."""
    rng = random.Random(seed)
    noise = "tell me about this one please"
    return [
        Example(text=noise, text_pair=" ".join(rng.choices(words, k=3)), label=label, line=i + 1)
        for i, (label, words) in enumerate(
            (label, words) for label, words in CLASS_WORDS.items() for _ in range(n)
        )
    ]


def test_a_word_model_reads_the_second_text_of_a_pair() -> None:
    classifier = tiny(epochs=6).fit(pair_examples(20, 1), pair_examples(5, 2), progress=False)
    test = pair_examples(5, 3)
    assert classifier.evaluate(test, latency=False)["accuracy"] >= 0.9
    # and the prediction changes with the second text alone
    first = classifier.predict([("tell me about this one please", "rain snow storm")])[0]["label"]
    second = classifier.predict([("tell me about this one please", "goal match team")])[0]["label"]
    assert (first, second) == ("weather", "sports")


def test_default_tracking_writes_tensorboard_scalars(synthetic_splits, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options = {**TINY, "tensorboard": True}  # the default; TINY turns it off for speed
    TextClassifier(**options).fit(
        synthetic_splits["train"], synthetic_splits["valid"], out_dir=tmp_path / "run", progress=False
    )
    events = list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert {"valid/accuracy", "valid/loss", "valid/macro_f1"} <= set(tags)
    assert len(accumulator.Scalars("valid/accuracy")) == TINY["epochs"]


def test_target_steps_scales_epochs_to_the_data() -> None:
    from textcls.training.loop import planned_epochs

    config = TrainConfig(epochs=10, target_steps=1500)
    assert planned_epochs(config, 157) == 10  # 5k examples at batch 32: capped at epochs
    assert planned_epochs(config, 409) == 4  # SNIPS: ceil(1500 / 409)
    assert planned_epochs(config, 2105) == 3  # SST-2: at least 3
    assert planned_epochs(TrainConfig(epochs=7), 10) == 7  # without a target: epochs


def test_epochs_the_caller_sets_win_over_a_presets_target_steps(tmp_path: Path) -> None:
    from textcls.api import build_config

    assert build_config("minilm-l6").train.target_steps == 1500  # the preset plans passes
    assert build_config("minilm-l6", epochs=4).train.target_steps is None  # --epochs 4 runs 4
    assert build_config("minilm-l6", **{"train.epochs": 4}).train.target_steps is None
    both = build_config("minilm-l6", epochs=4, target_steps=200).train
    assert (both.epochs, both.target_steps) == (4, 200)  # both given: both kept
    file = tmp_path / "config.json"
    file.write_text('{"train": {"epochs": 5}}')
    assert build_config("minilm-l6", config=file).train.target_steps is None
    assert build_config("minilm-l6", lr=1e-4).train.target_steps == 1500  # other settings: no change
    saved = tmp_path / "saved.json"  # a saved model's config names both; --epochs still wins
    saved.write_text('{"train": {"epochs": 10, "target_steps": 1500}}')
    assert build_config("minilm-l6", config=saved).train.target_steps == 1500
    assert build_config("minilm-l6", config=saved, epochs=4).train.target_steps is None


def test_target_steps_drive_the_training_loop(synthetic_splits) -> None:
    # 90 examples at batch 16 = 6 steps per epoch; 20 target steps = 4 epochs (patience off)
    result = (
        tiny(epochs=10, batch_size=16, target_steps=20)
        .fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
        .train_result
    )
    assert len(result.history) == 4 and result.steps == 24


def test_a_time_limit_ends_the_epoch_in_progress_validates_it_and_keeps_the_best(
    synthetic_splits, tmp_path: Path
) -> None:
    import json

    classifier = tiny(epochs=50, batch_size=2, patience=0, time_limit=0.05)  # 45 batches an epoch
    classifier.fit(
        synthetic_splits["train"], synthetic_splits["valid"], out_dir=tmp_path / "m", progress=False
    )
    result = classifier.train_result
    assert result.extra["time_limit_reached"] and result.stopped_early
    assert len(result.history) < 50 and result.steps < 45 * len(result.history)  # cut inside an epoch
    assert "accuracy" in result.history[-1]  # the cut epoch was validated
    saved = json.loads((tmp_path / "m" / "train_result.json").read_text())
    assert saved["time_limit_reached"] is True and (tmp_path / "m" / "model.safetensors").is_file()


def test_an_epochs_short_last_accumulation_step_is_the_mean_of_its_batches(synthetic_splits) -> None:
    """With plain SGD (no Adam rescaling), a step must not shrink because fewer batches were left:
    one batch per epoch under --grad-accum 4 trains exactly as without accumulation."""

    def weights(grad_accum: int) -> dict[str, torch.Tensor]:
        classifier = tiny(epochs=2, batch_size=128, grad_accum=grad_accum, optimizer="sgd", lr=0.5)
        classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
        return {k: v.clone() for k, v in classifier.predictor.model.state_dict().items()}

    plain, accumulated = weights(1), weights(4)
    for name, value in plain.items():
        torch.testing.assert_close(accumulated[name], value, msg=name)


def test_an_accumulated_step_weighs_each_batch_by_its_examples(synthetic_splits) -> None:
    """90 training examples in batches of 64 under --grad-accum 2 make one step of 64 + 26: with
    plain SGD and no dropout it must train exactly as one batch of all 90 (a mean of the two
    batch means would weigh each of the 26 examples 2.5 times as much as each of the 64)."""

    def weights(batch_size: int, grad_accum: int) -> dict[str, torch.Tensor]:
        classifier = tiny(
            epochs=2, batch_size=batch_size, grad_accum=grad_accum, optimizer="sgd", lr=0.5, head_dropout=0.0
        )
        classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
        assert classifier.train_result.steps == 2  # one step an epoch either way
        return {k: v.clone() for k, v in classifier.predictor.model.state_dict().items()}

    assert len(synthetic_splits["train"]) == 90
    plain, accumulated = weights(128, 1), weights(64, 2)
    for name, value in plain.items():
        torch.testing.assert_close(accumulated[name], value, msg=name)


def test_step_batches_counts_each_steps_batches() -> None:
    from textcls.training.schedule import step_batches

    assert [len(step_batches(i, 7, 3)) for i in range(7)] == [3, 3, 3, 3, 3, 3, 1]
    assert [len(step_batches(i, 2, 4)) for i in range(2)] == [2, 2]
    assert [len(step_batches(i, 3, 1)) for i in range(3)] == [1, 1, 1]
    assert [step_batches(i, 7, 3) for i in (0, 4, 6)] == [range(0, 3), range(3, 6), range(6, 7)]


def test_no_batch_leaves_a_process_without_examples() -> None:
    from textcls.training.loop import _every_process_busy

    batches = [[0, 1, 2], [3], [4, 5], [6, 7]]
    assert _every_process_busy(batches, 1) == batches  # one process: as they are
    assert _every_process_busy(batches, 2) == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert _every_process_busy([[3], [0, 1]], 2) == [[3, 0, 1]]
    assert _every_process_busy([[i] for i in range(5)], 3) == [[0, 1, 2, 3, 4]]
