"""Every registered encoder: output shape, gradients, masking, batch independence; plus
encoder-specific checks (DSA routing gradients, Gaussian NB logits, CNN on one token)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from textcls.encoders.base import masked_max, masked_mean
from textcls.encoders.densenet import DynamicSelfAttention
from textcls.registry import ENCODERS

DIM, LABELS = 8, 3
LENGTHS = [5, 1, 3, 7]  # real tokens per sample; the batch is padded to 7


def make_encoder(name: str, **params):
    torch.manual_seed(0)
    encoder = ENCODERS.get(name)(DIM, LABELS, **params)
    return encoder.eval()


def output_of(encoder, features: dict[str, torch.Tensor]) -> torch.Tensor:
    out = encoder(dict(features))
    return out["logits"] if encoder.produces_logits else out["sentence_embedding"]


def batch(lengths: list[int], total: int | None = None, garbage: float = 0.0, seed: int = 0):
    """token_embeddings [B, T, DIM] and attention_mask [B, T]. The real tokens depend only on
    ``seed`` and ``lengths``; padded positions hold ``garbage`` × random values (0 = zero
    padding, like the embedder produces) and there are ``total - max(lengths)`` extra ones."""
    longest = max(lengths)
    total = total or longest
    real = torch.randn(len(lengths), longest, DIM, generator=torch.Generator().manual_seed(seed))
    noise = torch.randn(len(lengths), total, DIM, generator=torch.Generator().manual_seed(99))
    mask = torch.arange(total).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    embeddings = garbage * noise
    embeddings[:, :longest] = torch.where(mask[:, :longest, None], real, embeddings[:, :longest])
    return {"token_embeddings": embeddings, "attention_mask": mask}


# every registered encoder over token embeddings with its defaults, plus variants whose masking
# works differently (encoders over a bag of n-gram ids, such as linear, are tested in test_linear.py)
OVER_EMBEDDINGS = [name for name in ENCODERS.names() if not getattr(ENCODERS.get(name), "reads_ids", False)]
CASES = [(name, {}) for name in OVER_EMBEDDINGS] + [
    ("lstm", {"pooling": "mean"}),
    ("lstm", {"pooling": "last", "num_layers": 2}),
    ("cnn", {"kernel_sizes": [1, 2, 6]}),
]
CASE_IDS = [*OVER_EMBEDDINGS, "lstm-mean", "lstm-last-2layers", "cnn-k1-2-6"]
cases = pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)


def test_registry_lists_the_encoders() -> None:
    assert {"mean", "gnb", "cnn", "densenet-cnn", "densenet-dsa", "lstm"} <= set(ENCODERS.names())


@cases
def test_output_shape(name: str, params: dict) -> None:
    encoder = make_encoder(name, **params)
    out = output_of(encoder, batch(LENGTHS))
    width = LABELS if encoder.produces_logits else encoder.output_dim
    assert out.shape == (len(LENGTHS), width)
    assert torch.isfinite(out).all()
    if encoder.produces_logits:
        assert encoder.output_dim == LABELS


@cases
def test_gradient_reaches_the_embeddings_and_not_the_padding(name: str, params: dict) -> None:
    encoder = make_encoder(name, **params)
    features = batch(LENGTHS, garbage=1.0)
    embeddings = features["token_embeddings"].clone().requires_grad_(True)
    out = output_of(encoder, {**features, "token_embeddings": embeddings})
    weights = torch.randn_like(out)  # a generic scalar function of every output
    (out * weights).sum().backward()
    grad = embeddings.grad
    mask = features["attention_mask"]
    for row, length in enumerate(LENGTHS):
        assert grad[row, :length].abs().sum() > 0, f"no gradient for sample {row}"
    assert torch.all(grad[~mask] == 0), "padded positions must not receive gradient"
    parameters = list(encoder.parameters())  # "mean" has none
    assert not parameters or any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters)


@cases
def test_padding_does_not_change_the_output(name: str, params: dict) -> None:
    encoder = make_encoder(name, **params)
    with torch.no_grad():
        tight = output_of(encoder, batch(LENGTHS))
        for garbage in (0.0, 1.0, 100.0):
            padded = output_of(encoder, batch(LENGTHS, total=12, garbage=garbage))
            assert torch.allclose(tight, padded, atol=1e-5), f"garbage={garbage}"


@cases
def test_samples_do_not_depend_on_each_other(name: str, params: dict) -> None:
    encoder = make_encoder(name, **params)
    full = batch(LENGTHS, garbage=5.0)
    with torch.no_grad():
        together = output_of(encoder, full)
        for row, length in enumerate(LENGTHS):
            alone = {
                "token_embeddings": full["token_embeddings"][row : row + 1, :length],
                "attention_mask": full["attention_mask"][row : row + 1, :length],
            }
            assert torch.allclose(together[row], output_of(encoder, alone)[0], atol=1e-5), row
        # changing another sample leaves this one unchanged
        changed = {k: v.clone() for k, v in full.items()}
        changed["token_embeddings"][1:] = torch.randn_like(changed["token_embeddings"][1:])
        assert torch.allclose(together[0], output_of(encoder, changed)[0], atol=1e-5)


@cases
def test_output_depends_on_the_real_tokens(name: str, params: dict) -> None:
    encoder = make_encoder(name, **params)
    first, second = batch(LENGTHS, seed=1), batch(LENGTHS, seed=2)
    with torch.no_grad():
        assert not torch.allclose(output_of(encoder, first), output_of(encoder, second), atol=1e-4)


# ---------------------------------------------------------------------------- pooling helpers


def test_masked_pooling_helpers() -> None:
    embeddings = torch.tensor([[[1.0, -4.0], [3.0, 2.0], [50.0, 50.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(masked_mean(embeddings, mask), torch.tensor([[2.0, -1.0]]))
    assert torch.equal(masked_max(embeddings, mask), torch.tensor([[3.0, 2.0]]))
    empty = torch.tensor([[False, False, False]])
    assert torch.equal(masked_max(embeddings, empty), torch.zeros(1, 2))
    assert torch.equal(masked_mean(embeddings, empty), torch.zeros(1, 2))


# ---------------------------------------------------------------------------- DSA


def test_dsa_output_depends_on_the_number_of_iterations() -> None:
    encoder = make_encoder("densenet-dsa", num_heads=2, head_dim=16)
    features = batch(LENGTHS)
    outputs = []
    with torch.no_grad():
        for iterations in (1, 2, 3):
            encoder.attention.iterations = iterations
            outputs.append(output_of(encoder, features))
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-6)
    assert not torch.allclose(outputs[1], outputs[2], atol=1e-6)


def test_dsa_gradients_reach_the_projection() -> None:
    encoder = make_encoder("densenet-dsa", num_heads=2, head_dim=16)
    encoder.train()
    output_of(encoder, batch(LENGTHS)).pow(2).sum().backward()
    grad = encoder.attention.project.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert encoder.densenet.first.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_dsa_routing_gradient_is_exact(iterations: int) -> None:
    """Autograd matches finite differences, for the input and the projection, through every
    routing iteration: this fails if any iteration's attention logits are detached."""
    torch.manual_seed(0)
    attention = DynamicSelfAttention(5, num_heads=2, head_dim=3, iterations=iterations).double()
    hidden = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    weight = attention.project.weight.detach().clone().requires_grad_(True)
    bias = attention.project.bias.detach().clone()

    def function(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        params = {"project.weight": w, "project.bias": bias}
        return torch.func.functional_call(attention, params, (h, mask))

    assert torch.autograd.gradcheck(function, (hidden, weight), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- Gaussian NB


def test_gnb_logits_are_log_prior_plus_gaussian_log_likelihood() -> None:
    encoder = make_encoder("gnb", min_variance=0.0)
    means = np.array([[0.0] * DIM, [1.0] * DIM, [-0.5, 0.5] * (DIM // 2)])
    variances = np.array([[1.0] * DIM, [0.25] * DIM, [2.0, 0.5] * (DIM // 2)])
    prior = np.array([0.5, 0.3, 0.2])
    with torch.no_grad():
        encoder.means.copy_(torch.tensor(means))
        encoder.log_variances.copy_(torch.tensor(np.log(variances)))
        encoder.prior_logits.copy_(torch.tensor(np.log(prior) + 7.0))  # any shift: softmax prior
    features = batch([2, 3], garbage=10.0, seed=4)
    logits = output_of(encoder, features).detach().double().numpy()

    embeddings = features["token_embeddings"].double().numpy()
    for row, length in enumerate([2, 3]):
        x = embeddings[row, :length].mean(0)
        for c in range(LABELS):
            log_density = sum(
                -0.5 * math.log(2 * math.pi * variances[c, d])
                - (x[d] - means[c, d]) ** 2 / (2 * variances[c, d])
                for d in range(DIM)
            )
            expected = math.log(prior[c]) + log_density
            assert logits[row, c] == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_gnb_min_variance_floor() -> None:
    encoder = make_encoder("gnb", min_variance=0.5)
    with torch.no_grad():
        encoder.log_variances.fill_(-50.0)  # variance ≈ 0: only the floor remains
        encoder.means.zero_()
        encoder.prior_logits.zero_()
    features = {
        "token_embeddings": torch.ones(1, 1, DIM),
        "attention_mask": torch.ones(1, 1, dtype=torch.bool),
    }
    logits = output_of(encoder, features)
    expected = math.log(1 / LABELS) + DIM * (-0.5 * math.log(2 * math.pi * 0.5) - 1 / (2 * 0.5))
    assert torch.allclose(logits, torch.full((1, LABELS), expected), atol=1e-4)


# ---------------------------------------------------------------------------- CNN


def test_cnn_on_a_single_token() -> None:
    encoder = make_encoder("cnn", num_filters=16, kernel_sizes=[3, 4, 5])
    features = batch([1], garbage=3.0)
    embeddings = features["token_embeddings"].clone().requires_grad_(True)
    out = output_of(encoder, {**features, "token_embeddings": embeddings})
    assert out.shape == (1, 48)
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    # every kernel width contributes (each sees the token through its wide padding)
    assert all(out[0, i * 16 : (i + 1) * 16].abs().sum() > 0 for i in range(3))
    out.sum().backward()
    assert embeddings.grad[0, 0].abs().sum() > 0
    # the same token padded to length 6 gives the same features
    with torch.no_grad():
        padded = output_of(encoder, batch([1], total=6, garbage=3.0))
    assert torch.allclose(out.detach(), padded, atol=1e-5)


def test_cnn_single_token_through_the_full_model() -> None:
    from textcls.config import ModelConfig
    from textcls.model import TextClassificationModel

    config = ModelConfig(labels=["a", "b"])
    config.encoder.params = {"num_filters": 4}
    model = TextClassificationModel(config, vocab_size=10, dim=DIM).eval()
    ids = torch.tensor([[3]])
    logits = model({"input_ids": ids, "attention_mask": ids != 0})["logits"]
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
