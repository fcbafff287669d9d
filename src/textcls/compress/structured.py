"""Structured pruning of transformers: attention heads and FFN neurons scored on training data,
removed from the matrices, then fine-tuned (``prune_structured``).

1. **Importance**, on a held-out share of the training split (``score_fraction``, stratified,
   seeded), never on the validation or test split:

   - a head: the expected absolute gradient of a head mask (Michel et al. 2019). Each head's
     context output (the input of the attention output projection) is multiplied by a mask of
     ones; ``|d loss / d mask|`` is summed over batches, and each layer's scores are divided by
     their L2 norm (the paper's code, FastFormers).
   - an FFN neuron: the first-order Taylor score of FastFormers' recipe, ``|activation ×
     gradient|`` of the intermediate output (after the activation function), summed over
     tokens and batches; L2-normalised per layer the same way, so that a global ranking compares
     layers on one scale.

   The loss is the cross-entropy of the model's logits against the gold labels, model in eval
   mode (no dropout); the weights get no gradient.
2. **Selection**: uniform (``heads_per_layer=N`` / ``ffn_dim=M``: the N / M best of every layer)
   or global (``heads_fraction`` / ``ffn_fraction``: that share of all heads / neurons removed,
   the lowest scores across layers first). A layer always keeps at least one head and one neuron.
3. **Physically smaller matrices** (``textcls.embeddings.transformer.shrink_layer``): query, key
   and value rows and output-projection columns of the removed heads; intermediate rows and
   output columns of the removed neurons. The model config records the result
   (``backbone.pruned_heads``: heads removed per layer, original indices; ``backbone.ffn_dims``:
   each layer's FFN width) and every load rebuilds the smaller modules before reading the weights
   (``apply_structure``). When every layer keeps the same FFN width, the HF config's own
   ``intermediate_size`` (DistilBERT: ``hidden_dim``) says it instead and ``ffn_dims`` stays
   empty: a ``cls`` directory pruned in its FFN only still loads in ``transformers.pipeline``.
4. **Fine-tuning** on the rest of train through the one training loop (``fit(start=...)``),
   the best epoch chosen on the validation split; with ``distill=True`` the loss is
   ``textcls.compress.distill.distillation_loss`` (KL at temperature 2, alpha 0.5) against the
   unpruned model's logits.
5. ``OUT`` is a normal model directory (``textcls.load``, export, serve), plus ``prune.json`` and
   ``prune.md``.

**ALBERT** shares one layer (per layer group) across its depth. Pruning prunes that shared layer:
every application of it loses the same heads and neurons, its scores sum over all applications,
and "per layer" means per shared layer (one, in the usual configuration).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from textcls.data.formats import Example
from textcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)
REPORT_JSON, REPORT_MD = "prune.json", "prune.md"
DEFAULT_EPOCHS = 2
DISTILL_TEMPERATURE, DISTILL_ALPHA = 2.0, 0.5


def backbone_of(model: nn.Module) -> nn.Module:
    """The HF encoder inside a TextClassificationModel (either layout)."""
    from textcls.embeddings.transformer import base_model

    embedder = model.embedder
    return base_model(embedder.model if hasattr(embedder, "model") else embedder.backbone)


def _layers(model: nn.Module) -> tuple[nn.Module, Any, list[nn.Module]]:
    from textcls.embeddings.transformer import prunable_layers, prunable_layout

    base = backbone_of(model)
    layout = prunable_layout(base)
    return base, layout, prunable_layers(base, layout)


def structure(model: nn.Module) -> list[dict[str, int]]:
    """Each prunable layer's head count and FFN width, as the modules are now."""
    _, layout, layers = _layers(model)
    return [
        {
            "heads": int(getattr(layer.get_submodule(layout.attention), layout.heads)),
            "ffn": int(layer.get_submodule(layout.output).in_features),
        }
        for layer in layers
    ]


# ------------------------------------------------------------------------------------ scoring
def importance_scores(
    model: nn.Module, featurizer: Any, examples: Sequence[Example], batch_size: int = 32
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(head scores, FFN neuron scores): one tensor per prunable layer, each L2-normalised within
    its layer (see the module docstring). ``examples`` must be training data."""
    _, layout, layers = _layers(model)
    index = {label: i for i, label in enumerate(model.config.labels)}
    examples = [e for e in examples if str(e.label) in index]
    if not examples:
        raise DataError("no labelled examples to score heads and neurons on", path="<training data>")
    device = next(model.parameters()).device
    head_masks = [
        torch.ones(
            int(getattr(layer.get_submodule(layout.attention), layout.heads)), device=device
        ).requires_grad_()
        for layer in layers
    ]
    head_scores = [torch.zeros_like(mask) for mask in head_masks]
    ffn_scores = [
        torch.zeros(layer.get_submodule(layout.output).in_features, device=device) for layer in layers
    ]

    def mask_heads(mask: torch.Tensor) -> Any:
        def hook(module: nn.Module, args: tuple) -> tuple:
            context = args[0]
            heads = context.unflatten(-1, (mask.numel(), -1)) * mask[:, None]
            return (heads.flatten(-2), *args[1:])

        return hook

    tokens: dict[str, torch.Tensor] = {}  # the batch's attention mask: padding is no token

    def taylor(score: torch.Tensor) -> Any:
        def hook(module: nn.Module, args: tuple) -> tuple:
            activation = args[0]
            value = activation.detach()
            # a factor of ones that needs a gradient: the hook below sees d loss / d activation
            gated = activation * torch.ones(value.shape[-1], device=value.device, requires_grad=True)

            def accumulate(grad: torch.Tensor) -> None:  # returns None: the gradient passes unchanged
                real = tokens["mask"].unsqueeze(-1).to(grad.dtype)
                score.add_(((value * grad).abs() * real).flatten(0, -2).sum(0))

            gated.register_hook(accumulate)
            return (gated, *args[1:])

        return hook

    hooks = []
    for layer, mask, score in zip(layers, head_masks, ffn_scores, strict=True):
        hooks.append(layer.get_submodule(layout.out).register_forward_pre_hook(mask_heads(mask)))
        hooks.append(layer.get_submodule(layout.output).register_forward_pre_hook(taylor(score)))
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    model.eval()
    model.requires_grad_(False)
    encoded = featurizer.encode([e.as_input() for e in examples])
    gold = [index[str(e.label)] for e in examples]
    try:
        with torch.enable_grad():
            order = sorted(range(len(encoded)), key=lambda i: featurizer.length(encoded[i]))  # less padding
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                batch = {k: v.to(device) for k, v in featurizer.collate([encoded[i] for i in chosen]).items()}
                tokens["mask"] = batch["attention_mask"]
                logits = model(batch)["logits"]
                target = torch.as_tensor([gold[i] for i in chosen], device=device)
                F.cross_entropy(logits, target).backward()
                for mask, score in zip(head_masks, head_scores, strict=True):
                    score += mask.grad.abs()
                    mask.grad = None
    finally:
        for hook in hooks:
            hook.remove()
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])
        model.train(was_training)
    return [_normalise(s.detach().cpu()) for s in head_scores], [_normalise(s.cpu()) for s in ffn_scores]


def _normalise(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.norm(p=2) + 1e-20)


# ---------------------------------------------------------------------------------- selection
def select(
    scores: Sequence[torch.Tensor], per_layer: int | None = None, fraction: float | None = None
) -> list[list[int]]:
    """The indices kept in each layer: the ``per_layer`` best of every layer, or all but the
    ``fraction`` of all units with the lowest scores across layers; never none of a layer.
    Ties go to the lower layer and index (deterministic)."""
    sizes = [len(s) for s in scores]
    if (per_layer is None) == (fraction is None):
        raise ConfigError("choose either a count per layer or a global fraction")
    if per_layer is not None:
        if not 1 <= per_layer <= max(sizes):
            raise ConfigError(f"keep 1 to {max(sizes)} per layer, not {per_layer}")
        return [sorted(torch.argsort(s, descending=True, stable=True)[:per_layer].tolist()) for s in scores]
    if not 0 <= fraction < 1:
        raise ConfigError(f"a fraction to remove must be in [0, 1), not {fraction}")
    ranked = sorted(
        (
            (float(value), layer, unit)
            for layer, s in enumerate(scores)
            for unit, value in enumerate(s.tolist())
        )
    )
    left, removed = list(sizes), set()
    wanted = round(fraction * sum(sizes))
    for _, layer, unit in ranked:
        if len(removed) == wanted:
            break
        if left[layer] > 1:
            left[layer] -= 1
            removed.add((layer, unit))
    return [[u for u in range(size) if (layer, u) not in removed] for layer, size in enumerate(sizes)]


# -------------------------------------------------------------------------------------- pruning
def prune_model(
    model: nn.Module,
    heads: Sequence[Sequence[int]] | None = None,
    neurons: Sequence[Sequence[int]] | None = None,
) -> None:
    """Shrink ``model`` in place to the kept ``heads`` / FFN ``neurons`` of each layer (current
    indices; None leaves that part alone) and record it in ``model.config.backbone`` (and the HF
    config's FFN width when it is the same in every layer), so that save → load rebuilds it."""
    from textcls.embeddings.transformer import shrink_layer

    base, layout, layers = _layers(model)
    backbone = model.config.backbone
    original = int(getattr(base.config, layout.heads))
    for number, layer in enumerate(layers):
        removed_before = set(backbone.pruned_heads.get(number, ()))
        present = [h for h in range(original) if h not in removed_before]  # current → original index
        keep = heads[number] if heads is not None else None
        shrink_layer(layer, layout, keep, neurons[number] if neurons is not None else None)
        if keep is not None:
            kept = {present[h] for h in keep}
            backbone.pruned_heads[number] = [h for h in range(original) if h not in kept]
    backbone.pruned_heads = {k: v for k, v in sorted(backbone.pruned_heads.items()) if v}
    widths = [layer.get_submodule(layout.output).in_features for layer in layers]
    if len(set(widths)) == 1:  # the HF config can say it: the directory stays loadable by HF
        setattr(base.config, layout.ffn, widths[0])
        backbone.ffn_dims = []
    else:
        backbone.ffn_dims = widths


# -------------------------------------------------------------------------------- the procedure
def prune_structured(
    model_dir: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    heads_per_layer: int | None = None,
    ffn_dim: int | None = None,
    heads_fraction: float | None = None,
    ffn_fraction: float | None = None,
    score_fraction: float = 0.1,
    epochs: int | None = None,
    distill: bool = False,
    progress: bool = True,
    track: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Prune the heads and/or FFN neurons of the transformer in ``model_dir``, fine-tune, save to
    ``out``; returns the report (also ``out/prune.json`` and ``out/prune.md``).

    ``data`` is a data directory or training file (default: the one recorded in the model's
    ``train_result.json``); ``valid`` / ``test`` name files. ``score_fraction`` of train
    (stratified, seeded) is held out to score on; the rest fine-tunes for ``epochs`` (None: 2;
    0: none), optionally distilled from the unpruned model. ``track``: where the fine-tuning run
    and the report's numbers go (tensorboard under ``out/tensorboard``, mlflow, none; default: the
    model's own training setting). ``overrides``: training options by keyword or dotted path
    (``lr=1e-4``, ``batch_size=16``, ``**{"train.seed": 1}``).

    >>> prune_structured("runs/snips-minilm", "runs/snips-minilm-h6", heads_per_layer=6)  # doctest: +SKIP
    """
    from textcls.data.splits import stratified_split
    from textcls.model import load_model, save_model

    model_dir, out = Path(model_dir), Path(out)
    _check_options(heads_per_layer, ffn_dim, heads_fraction, ffn_fraction, score_fraction, epochs)
    if out.resolve() == model_dir.resolve():
        raise ConfigError(f"{out}: write the pruned model to another directory than {model_dir}")
    model, featurizer, config = load_model(model_dir)
    if config.model.backbone is None:
        raise ConfigError(f"{model_dir}: structured pruning applies to transformer models only")
    if config.model.multi_label:
        raise ConfigError(
            f"{model_dir}: structured pruning scores one label per text; this model is multi-label"
        )
    _layers(model)  # an architecture without a layout fails before any work
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if track is not None:  # the fine-tuning run and the report both go there
        overrides = {**overrides, "train.track": track, "train.tensorboard": track == "tensorboard"}
    config = _train_config(config, overrides, epochs)
    splits, source = _read_splits(model_dir, data, valid, test, config)
    rest, held = stratified_split(splits.train, score_fraction, config.train.seed)
    if not held or not rest:
        raise DataError(
            f"too few training examples ({len(splits.train)}) to hold out {score_fraction:g} to score on",
            path=source["data"],
        )
    labels = config.model.labels
    unknown = sorted({str(e.label) for e in rest} - set(labels))
    if unknown:
        raise DataError(f"labels {unknown} are not the model's {labels}", path=source["data"])

    teacher = copy.deepcopy(model).eval()
    before = structure(model)
    device = "cuda" if torch.cuda.is_available() and not config.train.cpu else "cpu"  # as training does
    heads_scores, ffn_scores = importance_scores(model.to(device), featurizer, held, config.train.batch_size)
    keep_heads = None
    if heads_per_layer is not None or heads_fraction is not None:
        keep_heads = select(heads_scores, heads_per_layer, heads_fraction)
    keep_neurons = None
    if ffn_dim is not None or ffn_fraction is not None:
        keep_neurons = select(ffn_scores, ffn_dim, ffn_fraction)
    prune_model(model, keep_heads, keep_neurons)
    config.model = model.config  # the pruned structure is what gets saved
    log.info("pruned %s: %s", model_dir, _describe(before, structure(model)))
    accuracy = {
        "before": _measure(teacher, featurizer, labels, splits),
        "pruned": _measure(model, featurizer, labels, splits),
    }

    fine_tuning: dict[str, Any] = {"epochs": epochs, "examples": len(rest), "distill": bool(distill)}
    run = None  # the fine-tuning's MLflow run
    if epochs > 0:
        from textcls.training.fit import fit

        soft_loss = _soft_loss(teacher, featurizer, labels, rest, device) if distill else None
        _, result, _ = fit(
            config,
            rest,
            splits.valid,
            out_dir=out,
            progress=progress,
            data_source=source,
            soft_loss=soft_loss,
            start=(model, featurizer),
            notes=[
                f"structured pruning of {model_dir}: fine-tuned on train minus its {len(held)} "
                "scoring examples"
            ],
        )
        fine_tuning.update(best_epoch=result.best_epoch, history=result.history)
        run = result.extra.get("tracking")
    else:
        save_model(out, model, featurizer, config)
        summary = {
            "metric": "accuracy",
            "best_metric": accuracy["pruned"].get("valid"),
            "epochs": 0,
            "data": source,
        }
        (out / "train_result.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    saved, _, _ = load_model(out)  # what is reported is what was saved
    if epochs > 0:
        accuracy["fine_tuned"] = _measure(saved, featurizer, labels, splits)
    report = {
        "model": str(model_dir),
        "out": str(out),
        "architecture": backbone_of(model).config.model_type,
        "selection": {
            "heads_per_layer": heads_per_layer,
            "heads_fraction": heads_fraction,
            "ffn_dim": ffn_dim,
            "ffn_fraction": ffn_fraction,
        },
        "scoring": {
            "examples": len(held),
            "score_fraction": score_fraction,
            "seed": config.train.seed,
            "heads": "sum over batches of |d loss / d head mask| (Michel et al. 2019), "
            "L2-normalised per layer",
            "ffn": "|activation x gradient| of the intermediate output summed over tokens and batches "
            "(first-order Taylor, FastFormers), L2-normalised per layer",
        },
        "layers": _layer_rows(before, structure(model), config.model.backbone.pruned_heads, heads_scores),
        "heads": {
            "before": sum(r["heads"] for r in before),
            "after": sum(r["heads"] for r in structure(model)),
        },
        "ffn_neurons": {
            "before": sum(r["ffn"] for r in before),
            "after": sum(r["ffn"] for r in structure(model)),
        },
        "parameters": {"before": _parameters(teacher), "after": _parameters(saved)},
        "accuracy": accuracy,
        "fine_tuning": fine_tuning,
        "latency_p50_ms": _latency(teacher, saved, featurizer, labels, splits),
        "config": {
            "pruned_heads": {str(k): v for k, v in config.model.backbone.pruned_heads.items()},
            "ffn_dims": list(config.model.backbone.ffn_dims),
        },
    }
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / REPORT_MD).write_text(report_markdown(report), encoding="utf-8")
    plot_accuracy_latency(report, out / "prune.png")
    _track(report, config, out, run)
    return report


def _track(report: dict[str, Any], config: Any, out: Path, run: dict[str, str] | None) -> None:
    """The report's numbers (``report_metrics``) and files where training tracks (``config.train``):
    added to the fine-tuning's MLflow run, as evaluation after training is, or to a run of their
    own when there was no fine-tuning; TensorBoard scalars under ``out/tensorboard``, beside the
    fine-tuning's."""
    from textcls.training.loggers import make_logger, reopen, training_track

    logger = (
        reopen(run)
        if run
        else make_logger(
            training_track(config.train),
            out / "tensorboard",
            tracking_uri=config.train.tracking_uri,
            experiment=config.train.experiment,
            run_name=out.name,
        )
    )
    settings = {k: v for k, v in report["selection"].items() if v is not None}
    settings["score_fraction"] = report["scoring"]["score_fraction"]
    settings.update({k: report["fine_tuning"][k] for k in ("epochs", "distill")})
    logger.log_params({"prune": settings})
    logger.log_metrics(report_metrics(report))
    for name in (REPORT_JSON, REPORT_MD, "prune.png"):
        logger.log_artifact(out / name, "prune")
    logger.close()


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's numbers as tracked metrics: ``prune/accuracy/STAGE/SPLIT`` (before, pruned,
    fine_tuned), and before / after of ``prune/parameters``, ``prune/heads``,
    ``prune/ffn_neurons`` and ``prune/latency_p50_ms``."""
    metrics = {
        f"prune/accuracy/{stage}/{split}": value
        for stage, row in report["accuracy"].items()
        for split, value in row.items()
    }
    for key in ("parameters", "heads", "ffn_neurons", "latency_p50_ms"):
        metrics.update({f"prune/{key}/{when}": report[key][when] for when in ("before", "after")})
    return metrics


def plot_accuracy_latency(report: dict[str, Any], path: Path) -> bool:
    """``prune.png``: accuracy against batch-1 latency of the unpruned and the pruned model."""
    from textcls.inference.bench import pareto_front, plot

    latency, accuracy = report["latency_p50_ms"], report["accuracy"]
    split = "test" if "test" in accuracy["before"] else "valid"
    after = accuracy.get("fine_tuned") or accuracy["pruned"]
    rows = [
        {
            "model": name,
            "backend": latency["backend"],
            "threads": latency["threads"],
            "p50_ms": ms,
            "accuracy": acc,
        }
        for name, ms, acc in (
            ("unpruned", latency["before"], 100 * accuracy["before"][split]),
            (f"pruned ({report['heads']['after']} heads)", latency["after"], 100 * after[split]),
        )
    ]
    front = pareto_front(rows)
    for i, row in enumerate(rows):
        row["pareto"] = i in front
    return plot(rows, path)


def _check_options(
    heads_per_layer: int | None,
    ffn_dim: int | None,
    heads_fraction: float | None,
    ffn_fraction: float | None,
    score_fraction: float,
    epochs: int | None,
) -> None:
    if heads_per_layer is not None and heads_fraction is not None:
        raise ConfigError("give heads_per_layer or heads_fraction, not both")
    if ffn_dim is not None and ffn_fraction is not None:
        raise ConfigError("give ffn_dim or ffn_fraction, not both")
    if all(v is None for v in (heads_per_layer, ffn_dim, heads_fraction, ffn_fraction)):
        raise ConfigError("nothing to prune: give heads_per_layer, heads_fraction, ffn_dim or ffn_fraction")
    for name, value in (("heads_fraction", heads_fraction), ("ffn_fraction", ffn_fraction)):
        if value is not None and not 0 <= value < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {value}")
    for name, value in (("heads_per_layer", heads_per_layer), ("ffn_dim", ffn_dim)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1 (a layer keeps a head and a neuron), got {value}")
    if not 0 < score_fraction < 1:
        raise ConfigError(f"score_fraction must be in (0, 1), got {score_fraction}")
    if epochs is not None and epochs < 0:
        raise ConfigError(f"epochs must be 0 (no fine-tuning) or more, got {epochs}")


def _train_config(config: Any, overrides: dict[str, Any], epochs: int) -> Any:
    """The model's config with training overrides (never model changes) and the epochs."""
    from textcls.config import deep_update
    from textcls.options import as_update

    data = config.model_dump()
    for key, value in overrides.items():
        if value is not None:
            data = deep_update(data, as_update(key, value))
    if epochs > 0:
        data = deep_update(data, {"train": {"epochs": epochs, "target_steps": None}})
    changed = type(config).from_dict(data, source="prune options")
    if changed.model != config.model:
        raise ConfigError(f"prune options {sorted(overrides)}: only training and data options can change")
    changed.model = config.model  # the very object the loaded network holds
    return changed


def _read_splits(
    model_dir: Path, data: Any, valid: Any, test: Any, config: Any
) -> tuple[Any, dict[str, Any]]:
    """The splits, and where they came from (kept in ``train_result.json`` so that export's int8
    gate finds the same validation split)."""
    from textcls.data.splits import load_splits

    seed = config.train.seed
    if data is None:
        summary = model_dir / "train_result.json"
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("data") if summary.is_file() else None
        if not recorded or not recorded.get("data") or not Path(recorded["data"]).exists():
            raise ConfigError(f"{model_dir}: its training data is not recorded (or has moved): give data=")
        data, valid = recorded["data"], valid or recorded.get("valid")
        test = test or recorded.get("test")
        seed = recorded.get("seed", seed)
    splits = load_splits(data, valid=valid, test=test, options=config.data, seed=seed)
    for note in splits.notes:
        log.info("%s", note)
    source = {
        "data": str(Path(data).resolve()),
        "valid": str(Path(valid).resolve()) if valid else None,
        "seed": seed,
    }
    if test:
        source["test"] = str(Path(test).resolve())
    return splits, source


def _soft_loss(
    teacher: nn.Module, featurizer: Any, labels: list[str], examples: Sequence[Example], device: str
) -> Any:
    """Distillation from the unpruned model (its logits on the fine-tuning texts, computed once)."""
    from textcls.compress.distill import distillation_loss
    from textcls.inference.predictor import TorchPredictor

    logits = TorchPredictor(teacher, featurizer, labels, device).logits([e.as_input() for e in examples])
    teacher.cpu()
    targets = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))

    def soft_loss(student: torch.Tensor, indices: list[int], gold: torch.Tensor) -> torch.Tensor:
        return distillation_loss(
            student, targets[indices].to(student.device), gold, DISTILL_TEMPERATURE, DISTILL_ALPHA
        )

    return soft_loss


def _measure(model: nn.Module, featurizer: Any, labels: list[str], splits: Any) -> dict[str, float]:
    """Accuracy on the validation split and (when there is one) the test split."""
    from textcls.evaluation import evaluate
    from textcls.inference.predictor import TorchPredictor

    predictor = TorchPredictor(model, featurizer, labels)
    return {
        split: float(evaluate(predictor, examples, latency=False)["accuracy"])
        for split, examples in (("valid", splits.valid), ("test", splits.test))
        if examples
    }


def _latency(
    before: nn.Module, after: nn.Module, featurizer: Any, labels: list[str], splits: Any
) -> dict[str, Any]:
    """Batch-1 p50 ms on torch (``single_timings``) on the test texts, else the validation texts."""
    from textcls.evaluation import single_timings
    from textcls.inference.predictor import TorchPredictor

    texts = [e.as_input() for e in (splits.test or splits.valid)][:200]
    row: dict[str, Any] = {"backend": "torch", "texts": len(texts), "threads": torch.get_num_threads()}
    for name, model in (("before", before), ("after", after)):
        timings = single_timings(TorchPredictor(model, featurizer, labels), texts, len(texts))
        row[name] = round(float(np.percentile(timings, 50)), 4)
    return row


def _parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _layer_rows(
    before: list[dict[str, int]],
    after: list[dict[str, int]],
    pruned: dict[int, list[int]],
    scores: Sequence[torch.Tensor],
) -> list[dict[str, Any]]:
    rows = []
    for number, (old, new) in enumerate(zip(before, after, strict=True)):
        removed = set(pruned.get(number, ()))
        total = new["heads"] + len(removed)
        rows.append(
            {
                "layer": number,
                "heads_before": old["heads"],
                "heads_after": new["heads"],
                "heads_kept": [h for h in range(total) if h not in removed],  # original indices
                "head_scores": [round(float(s), 6) for s in scores[number]],
                "ffn_before": old["ffn"],
                "ffn_after": new["ffn"],
            }
        )
    return rows


def _describe(before: list[dict[str, int]], after: list[dict[str, int]]) -> str:
    return ", ".join(
        f"layer {i}: heads {b['heads']}→{a['heads']}, ffn {b['ffn']}→{a['ffn']}"
        for i, (b, a) in enumerate(zip(before, after, strict=True))
    )


def report_markdown(report: dict[str, Any]) -> str:
    selection = ", ".join(f"{k} {v}" for k, v in report["selection"].items() if v is not None)
    scoring = report["scoring"]
    lines = [
        f"# Structured pruning of {report['model']} ({report['architecture']})",
        "",
        f"{selection}; scored on {scoring['examples']} held-out training examples "
        f"({scoring['score_fraction']:g} of train, seed {scoring['seed']}); "
        f"fine-tuning: {report['fine_tuning']['epochs']} epochs"
        + (", distilled from the unpruned model" if report["fine_tuning"]["distill"] else ""),
        "",
        "| layer | heads | heads kept (original indices) | FFN neurons |",
        "|---:|---:|---|---:|",
    ]
    for row in report["layers"]:
        lines.append(
            f"| {row['layer']} | {row['heads_before']} → {row['heads_after']} "
            f"| {', '.join(map(str, row['heads_kept']))} | {row['ffn_before']} → {row['ffn_after']} |"
        )
    parameters, latency = report["parameters"], report["latency_p50_ms"]
    lines += [
        "",
        f"heads {report['heads']['before']} → {report['heads']['after']}, FFN neurons "
        f"{report['ffn_neurons']['before']} → {report['ffn_neurons']['after']}, parameters "
        f"{parameters['before']:,} → {parameters['after']:,} "
        f"({parameters['after'] / parameters['before']:.1%})",
        "",
        "| accuracy (%) | " + " | ".join(report["accuracy"]) + " |",
        "|---|" + "---:|" * len(report["accuracy"]),
    ]
    splits = sorted(
        {split for row in report["accuracy"].values() for split in row}, key=["valid", "test"].index
    )
    for split in splits:
        cells = [f"{100 * row[split]:.2f}" if split in row else "–" for row in report["accuracy"].values()]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"batch-1 p50 latency ({latency['backend']}, {latency['threads']} threads, "
        f"{latency['texts']} texts): "
        f"{latency['before']:.3f} ms before, {latency['after']:.3f} ms after",
    ]
    return "\n".join(lines) + "\n"
