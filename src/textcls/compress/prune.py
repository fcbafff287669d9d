"""Unstructured pruning of any model directory: magnitude or random, local or global, one-shot
or iterative, with the lottery-ticket family of rewinds (``textcls prune``).

A *method* is a schedule and what happens to the surviving weights after each pruning step
(``METHODS``):

- ``ticket``: iterative; rewound to the weights training started from (``init.safetensors``,
  written by ``textcls train --save-init``): the lottery ticket of Frankle & Carbin (2019);
- ``late``: iterative; rewound to an early point of training (``rewind.safetensors``, from
  ``--rewind-at epoch:1`` or ``step:K``): late rewinding (Frankle et al. 2019);
- ``random``: the control of Frankle & Carbin: at each level the winning ticket's own mask, the
  pruned tensors' surviving weights re-drawn at random, everything else rewound to init (so it
  runs with ``ticket``);
- ``finetune``: iterative; the surviving weights kept and fine-tuned;
- ``oneshot``: each level pruned at once from the dense trained model, then rewound to init;
  ``oneshot-finetune`` the same, fine-tuned.

Each round prunes a share of the weights still alive (``schedule``: e.g. 20 % a round until the
target), rewinds, and retrains through the one training loop with the masks held
(``torch.nn.utils.prune`` re-parametrisation: masked weights get no gradient). Scores, masks and
their composition are torch's (``l1_unstructured`` / ``random_unstructured`` per layer, or
``global_unstructured`` over all the chosen layers). What is saved are plain weights with the zeros
in them (``textcls.model.plain_state_dict``), so every backend serves the sparse model as it is;
the report measures the sparsity again after reloading the saved directory.

Dense CPU kernels (PyTorch, ONNX Runtime) do not skip zeros: unstructured sparsity makes a model
smaller to store compressed (``zipped_mb``), not faster; the report's latencies show it.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textcls.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads METHODS without it
    import torch
    from torch import nn

log = logging.getLogger(__name__)
REPORT = "prune.json"
METHODS: dict[str, tuple[str, str]] = {  # name → (schedule, what the survivors become)
    "ticket": ("iterative", "init"),
    "late": ("iterative", "early"),
    "random": ("iterative", "random"),
    "finetune": ("iterative", "keep"),
    "oneshot": ("oneshot", "init"),
    "oneshot-finetune": ("oneshot", "keep"),
}
KINDS = ("linear", "conv", "lstm", "embedding", "classifier")  # what --params names
# What training added over a pretrained transformer: a Hugging Face model's own task head (all
# outside its base model: BERT's ``classifier``, DistilBERT's ``pre_classifier``, DeBERTa's
# ``pooler``, BART's ``classification_head``) or, over a backbone's hidden states, our own encoder
# and head. New, randomly initialised weights, not the pretrained network whose subnetworks a ticket
# looks for: left dense unless ``classifier`` is named, as Chen et al. (2020) prune only BERT's
# encoder and pooler; a global magnitude threshold otherwise cuts most of a new head (init std 0.02).


def _kind_classes(kind: str) -> tuple[type[nn.Module], ...]:
    from torch import nn

    return {
        "linear": (nn.Linear,),
        "conv": (nn.Conv1d, nn.Conv2d),
        "lstm": (nn.LSTM, nn.GRU),
        "embedding": (nn.Embedding,),
        # what training added over a pretrained transformer (``_in_task_head``)
        "classifier": (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.GRU),
    }[kind]


DEFAULT_PARAMS = ("linear", "conv", "lstm")


def schedule(target: float, rate: float | None = 0.2, rounds: int | None = None) -> list[float]:
    """The overall sparsity after each round: ``rate`` of the surviving weights a round until
    ``target`` (the last round stops at it), or ``rounds`` equal-rate rounds reaching it.

    >>> [round(s, 3) for s in schedule(0.5, rate=0.2)]
    [0.2, 0.36, 0.488, 0.5]
    >>> [round(s, 3) for s in schedule(0.75, rounds=2)]
    [0.5, 0.75]
    """
    if not 0 < target < 1:
        raise ConfigError(f"--sparsity must be between 0 and 1 (exclusive), got {target}")
    if rounds is not None:
        if rounds < 1:
            raise ConfigError(f"--rounds must be at least 1, got {rounds}")
        keep = (1 - target) ** (1 / rounds)
        levels = [1 - keep**k for k in range(1, rounds + 1)]
        levels[-1] = target
        return levels
    if rate is None or not 0 < rate < 1:
        raise ConfigError(f"--rate must be between 0 and 1 (exclusive), got {rate}")
    levels: list[float] = []
    while not levels or levels[-1] < target - 1e-9:
        levels.append(min(target, 1 - (1 - rate) ** (len(levels) + 1)))
    return levels


def _pretrained_prefix(model: nn.Module) -> str | None:
    """The qualified name of a model's pretrained transformer (``None`` for word models): the
    base model inside a Hugging Face model with its own head, or the backbone under our encoder."""
    from textcls.embeddings.transformer import NativeClassifier, TransformerEmbedder

    embedder = getattr(model, "embedder", None)
    if isinstance(embedder, NativeClassifier):
        return f"embedder.model.{embedder.model.base_model_prefix}"
    return "embedder.backbone" if isinstance(embedder, TransformerEmbedder) else None


def _in_task_head(module_name: str, pretrained: str | None) -> bool:
    """Whether a module is new on top of the pretrained transformer named ``pretrained``: neither
    inside it nor one of the modules that hold it."""
    if pretrained is None or module_name == pretrained or module_name.startswith(pretrained + "."):
        return False
    return not pretrained.startswith(module_name + ".") and module_name != ""


def prunable(model: nn.Module, params: Sequence[str] = DEFAULT_PARAMS) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, module, parameter name) of every weight of the chosen kinds. A table of
    class weights read by token id (the ``linear`` model's ``encoder.weight``) is a linear layer;
    word-vector tables are ``embedding``. Over a pretrained transformer, what training added (the
    backbone's own task head, or our encoder and head over its hidden states) is ``classifier``
    only. Biases and norms are never pruned."""
    unknown = sorted(set(params) - set(KINDS))
    if unknown:
        raise ConfigError(f"--params {','.join(unknown)}: choose from {', '.join(KINDS)}")
    from torch import nn

    wanted = tuple(c for kind in params if kind != "classifier" for c in _kind_classes(kind))
    pretrained = _pretrained_prefix(model)
    found = []
    for module_name, module in model.named_modules():
        kind_ok = isinstance(module, wanted)
        if _in_task_head(module_name, pretrained):
            kind_ok = "classifier" in params and isinstance(module, _kind_classes("classifier"))
        if (
            isinstance(module, nn.Embedding)
            and getattr(module, "embedding_dim", 0)
            and (
                module_name.startswith("encoder.")  # the linear model's class-weight table
            )
        ):
            kind_ok = "linear" in params
        if not kind_ok:
            continue
        for name, _ in list(module.named_parameters(recurse=False)):
            base = name.removesuffix("_orig")
            if base.startswith("weight"):  # weight, weight_ih_l0, weight_hh_l0_reverse, ...
                found.append((f"{module_name}.{base}" if module_name else base, module, base))
    if not found:
        raise ConfigError(f"the model has no {', '.join(params)} weights to prune (--params)")
    return found


def apply_level(
    targets: Sequence[tuple[str, nn.Module, str]], level: float, previous: float, scores: str, scope: str
) -> None:
    """Prune so that ``level`` of the targets' weights are zero, from ``previous``: torch prunes
    that share of the weights still alive (its masks compose with those already held)."""
    from torch.nn.utils import prune as torch_prune

    method = {"magnitude": torch_prune.L1Unstructured, "random": torch_prune.RandomUnstructured}.get(scores)
    if method is None:
        raise ConfigError(f"--scores {scores}: magnitude or random")
    if scope not in ("global", "local"):
        raise ConfigError(f"--scope {scope}: global or local")
    amount = 1 - (1 - level) / (1 - previous)
    # magnitudes of the weights as they are now (orig × mask), not a tensor cached by a forward pass
    current = {(module, name): _current(module, name) for _, module, name in targets}
    if scope == "global":
        extra = {"importance_scores": current} if scores == "magnitude" else {}
        torch_prune.global_unstructured(list(current), pruning_method=method, amount=amount, **extra)
    else:
        for module, name in current:
            extra = {"importance_scores": current[module, name]} if scores == "magnitude" else {}
            method.apply(module, name, amount=amount, **extra)


def _current(module: nn.Module, name: str) -> torch.Tensor:
    if hasattr(module, name + "_orig"):
        return (getattr(module, name + "_orig") * getattr(module, name + "_mask")).detach()
    return getattr(module, name).detach()


def masks(targets: Sequence[tuple[str, nn.Module, str]]) -> dict[str, torch.Tensor]:
    """The masks the targets hold now (qualified name → 0/1 tensor)."""
    return {q: getattr(module, name + "_mask").detach().clone() for q, module, name in targets}


def apply_masks(targets: Sequence[tuple[str, nn.Module, str]], held: dict[str, torch.Tensor]) -> None:
    """Hold exactly these masks (another run's), replacing none already held."""
    from torch.nn.utils import prune as torch_prune

    for qualified, module, name in targets:
        torch_prune.custom_from_mask(module, name, mask=held[qualified])


def sparsity(model: nn.Module, names: Sequence[str]) -> dict[str, Any]:
    """Zeros per named weight and overall (over those weights), of a model's plain state."""
    from textcls.model import plain_state_dict

    state = plain_state_dict(model)
    layers, zeros, total = {}, 0, 0
    for name in names:
        tensor = state[name]
        count = int((tensor == 0).sum())
        layers[name] = round(count / tensor.numel(), 6)
        zeros, total = zeros + count, total + tensor.numel()
    every = sum(v.numel() for v in state.values() if v.is_floating_point())
    every_zero = sum(int((v == 0).sum()) for v in state.values() if v.is_floating_point())
    return {
        "sparsity": round(zeros / max(1, total), 6),
        "pruned_weights": zeros,
        "prunable_weights": total,
        "sparsity_all_parameters": round(every_zero / max(1, every), 6),
        "layers": layers,
    }


def zipped_mb(path: Path) -> float:
    """The size of ``path`` deflated in a zip (what sparsity saves on disk or on the wire)."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.write(path, path.name)
    return buffer.tell() / 1e6


def _rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` (plain names) into a model whose pruned weights are ``NAME_orig``; the
    masks stay."""
    current = model.state_dict()
    missing = [
        k.removesuffix("_orig")
        for k in current
        if k.endswith("_orig") and k.removesuffix("_orig") not in state
    ]
    if missing:  # a rewind point of another architecture: never a silent fine-tune instead
        raise ConfigError(
            f"the rewind point has no weights for {', '.join(missing[:5])}: it is not this model's"
        )
    new = {}
    for key, value in current.items():
        base = key.removesuffix("_orig")
        new[key] = state[base].to(value.dtype) if not key.endswith("_mask") and base in state else value
    model.load_state_dict(new)


def _random_values(model_dir: Path, names: Sequence[str], seed: int) -> dict[str, torch.Tensor]:
    """Fresh initial values for the named weights: the same architecture rebuilt from the model
    directory and re-initialised (every module's own ``reset_parameters``), seeded."""
    import torch

    from textcls.model import load_model

    fresh, _, _ = load_model(model_dir)
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    state = fresh.state_dict()
    return {name: state[name].detach().clone() for name in names}


def _read_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ConfigError(f"{path.parent}: no {path.name}; {what}")
    return load_file(str(path))


def prune_model(
    model_dir: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    methods: Sequence[str] = ("ticket",),
    target: float = 0.8,
    rate: float | None = 0.2,
    rounds: int | None = None,
    scores: str = "magnitude",
    scope: str = "global",
    params: Sequence[str] = DEFAULT_PARAMS,
    epochs: int | None = None,
    progress: bool = True,
    track: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Prune the model in ``model_dir`` with each of ``methods`` down to ``target`` sparsity and
    retrain it after every round on ``data`` (default: the data it was trained on). Each method's
    last round is saved as a model directory ``out/METHOD``; ``out/prune.json``, ``prune.md`` and
    ``prune.png`` (accuracy against sparsity, one line a method) report every round. ``epochs``:
    retraining epochs a round (default: the model's own settings). ``track``: where every round's
    metrics go (tensorboard under ``out/tensorboard``, mlflow, none; default: the model's own
    training setting). Returns the report."""

    from textcls.config import deep_update
    from textcls.model import load_model
    from textcls.training.checkpoint import INIT_FILE, REWIND_FILE
    from textcls.training.fit import fit
    from textcls.training.loggers import make_logger, training_track

    model_dir, out = Path(model_dir), Path(out)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"--methods {','.join(unknown) or '(none)'}: choose from {', '.join(METHODS)}")
    if "random" in methods and "ticket" not in methods:
        raise ConfigError(
            "--methods random re-draws the winning ticket's masks at random: give it with ticket "
            "(--methods ticket,random)"
        )
    if "random" in methods:  # the ticket's masks first
        methods = ["ticket", *[m for m in methods if m != "ticket"]]
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: retraining needs at least one epoch a round")
    _check_out(model_dir, out, methods)
    levels = schedule(target, rate, rounds)
    model, featurizer, config = load_model(model_dir)
    closed_form = hasattr(model.encoder, "fit_closed_form")
    rewinding = [m for m in methods if METHODS[m][1] != "keep"]
    if closed_form and rewinding:
        raise ConfigError(
            f"{model_dir}: the {config.model.encoder.name} model is fitted in closed form, without "
            f"initial weights or retraining; --methods {','.join(rewinding)} need both. Use --methods "
            "finetune or oneshot-finetune (pruned, not retrained)"
        )
    init_state = rewind_state = None
    if any(METHODS[m][1] in ("init", "random") for m in methods):
        init_state = _read_state(model_dir / INIT_FILE, "train the model with --save-init to rewind to init")
    if any(METHODS[m][1] == "early" for m in methods):
        rewind_state = _read_state(
            model_dir / REWIND_FILE, "train the model with --rewind-at epoch:1 (or step:K) for late rewinding"
        )
    splits, source = _splits(model_dir, data, valid, test, config)
    updates = {"train": {"tensorboard": False, "track": "none"}}
    if epochs is not None:
        updates["train"].update(epochs=epochs, target_steps=None)
    # one merge after the other: training options (lr=...) must not replace the epochs and tracking set here
    train_config = type(config).from_dict(
        deep_update(deep_update(config.model_dump(), updates), _nested(overrides))
    )
    dense = _measure(model, featurizer, config, splits)
    names = [q for q, _, _ in prunable(model, params)]
    report: dict[str, Any] = {
        "model": str(model_dir),
        "data": source,
        "scores": scores,
        "scope": scope,
        "params": list(params),
        "schedule": [round(s, 6) for s in levels],
        "retrain_epochs": None if closed_form else train_config.train.epochs,
        "dense": {**dense, **sparsity(model, names)},
        "methods": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    tracking = make_logger(
        training_track(config.train) if track is None else track,
        out / "tensorboard",
        tracking_uri=train_config.train.tracking_uri,
        experiment=train_config.train.experiment,
        run_name=f"prune-{model_dir.name}",
    )
    tracking.log_params({"scores": scores, "scope": scope, "params": ",".join(params), "target": target})
    states = {"init": init_state, "early": rewind_state}
    try:
        for number, method in enumerate(methods):
            _run_method(
                method, number, levels, model_dir, out, params, names, scores, scope, states,
                train_config, config, featurizer, splits, source, closed_form, progress, tracking, report,
                fit, load_model,
            )  # fmt: skip
    except BaseException:
        tracking.close("FAILED")
        raise
    tracking.close()
    return report


def _check_out(model_dir: Path, out: Path, methods: Sequence[str]) -> None:
    """OUT/METHOD must not be the model being pruned (nor hold it), nor another model that prune
    did not write."""
    source = model_dir.resolve()
    for target in [out, *(out / m for m in methods)]:
        if target.resolve() == source or (source.is_relative_to(target.resolve()) and target != out):
            raise ConfigError(f"--out {out}: {target} is the model being pruned; give another --out")
    if out.resolve() == source:
        raise ConfigError(f"--out {out} is the model being pruned; give another --out")
    for method in methods:
        summary = out / method / "train_result.json"
        if (out / method / "config.json").is_file() and (
            not summary.is_file() or "pruned_from" not in json.loads(summary.read_text(encoding="utf-8"))
        ):
            raise ConfigError(
                f"{out / method} holds a model that textcls prune did not write; give another --out"
            )


def _run_method(
    method, number, levels, model_dir, out, params, names, scores, scope, states,
    train_config, config, featurizer, splits, source, closed_form, progress, tracking, report,
    fit, load_model,
) -> None:  # fmt: skip
    """Every round of one method; its last round saved in ``out/METHOD``, the report rewritten."""
    import torch

    kind, survivors = METHODS[method]
    log.info("prune %s: %s, %s; levels %s", method, kind, survivors, [f"{s:.3f}" for s in levels])
    trained, rows, current = None, [], None
    for index, level in enumerate(levels, start=1):
        started = time.perf_counter()
        if kind == "oneshot" or current is None or survivors == "random":  # from the dense model
            current, _, _ = load_model(model_dir)
            previous = 0.0
        else:
            previous = levels[index - 2]
        targets = prunable(current, params)
        torch.manual_seed(train_config.train.seed + index)  # random scores are reproducible
        if survivors == "random":  # the control: the ticket's own mask at this level
            apply_masks(targets, states["ticket_masks"][index])
        else:
            apply_level(targets, level, previous, scores, scope)
        if method == "ticket":
            states.setdefault("ticket_masks", {})[index] = masks(targets)
        if survivors == "random":
            _rewind(
                current,
                {
                    **states["init"],
                    **_random_values(model_dir, names, train_config.train.seed + 1000 * index),
                },
            )
        elif survivors in states:
            _rewind(current, states[survivors])
        row = {"round": index, "target": round(level, 6)}
        if not closed_form:  # the one training loop, masks held
            _, trained, _ = fit(
                train_config, splits.train, splits.valid, progress=progress, start=(current, featurizer)
            )
            row["epochs"] = len(trained.history)
        row.update(_measure(current, featurizer, config, splits))
        row["sparsity"] = sparsity(current, names)["sparsity"]
        row["seconds"] = round(time.perf_counter() - started, 2)
        rows.append(row)
        tracking.log_metrics(
            {f"{method}/{k}": v for k, v in row.items() if isinstance(v, int | float) and k != "round"},
            number * 1000 + index,
        )
        log.info(
            "prune %s round %d: sparsity %.3f, valid accuracy %.4f%s",
            method,
            index,
            row["sparsity"],
            row["valid_accuracy"],
            f", test {row['test_accuracy']:.4f}" if "test_accuracy" in row else "",
        )
    report["methods"][method] = {
        "schedule": kind,
        "survivors": survivors,
        "masks_from": "ticket" if survivors == "random" else method,
        "rounds": rows,
        **_save(current, featurizer, config, out / method, model_dir, names, trained, splits, source),
    }
    _write(out, report)


def _nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """Flat training keywords (``lr=...``) or sections (``train={...}``) as a config update."""
    from textcls.config import TrainConfig

    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in TrainConfig.model_fields:
            nested.setdefault("train", {})[key] = value
        elif isinstance(value, dict):
            nested[key] = value
        else:
            raise ConfigError(f"prune: unknown option '{key}' (training settings only)")
    return nested


def _splits(model_dir: Path, data: Any, valid: Any, test: Any, config: Any) -> tuple[Any, dict[str, Any]]:
    """The data to retrain and measure on (``data`` given, or the files the model was trained on)
    and where it is, as ``train_result.json`` records it (the int8 gate of export reads it)."""
    from textcls.data.splits import load_splits

    seed = config.train.seed
    if data is None:
        summary = model_dir / "train_result.json"
        source = json.loads(summary.read_text(encoding="utf-8")).get("data") if summary.is_file() else None
        if not source or not source.get("data") or not Path(source["data"]).exists():
            raise ConfigError(f"{model_dir}: the training data is not recorded or moved; give --data")
        data, valid, seed = source["data"], valid or source.get("valid"), source.get("seed", seed)
    splits = load_splits(data, valid=valid, test=test, options=config.data, seed=seed)
    where = {
        "data": str(Path(data).resolve()),
        "valid": str(Path(valid).resolve()) if valid else None,
        "seed": seed,
    }
    return splits, where


def _measure(model: nn.Module, featurizer: Any, config: Any, splits: Any) -> dict[str, float]:
    """Accuracy and macro-F1 on the validation and (when there is one) test split."""
    from textcls.evaluation import evaluate
    from textcls.inference.predictor import TorchPredictor

    model.eval()
    predictor = TorchPredictor(model, featurizer, config.model.labels)
    measured = {}
    for split, examples in (("valid", splits.valid), ("test", splits.test)):
        if examples:
            report = evaluate(predictor, examples, latency=False)
            measured[f"{split}_accuracy"] = report["accuracy"]
            measured[f"{split}_macro_f1"] = report["macro_f1"]
    return measured


def _save(
    model: nn.Module,
    featurizer: Any,
    config: Any,
    directory: Path,
    model_dir: Path,
    names: Sequence[str],
    trained: Any,
    splits: Any,
    source: dict[str, Any],
) -> dict[str, Any]:
    """Save the last round as a model directory (``train_result.json``: its last retraining, the
    data, what it was pruned from), reload it, and measure what was saved."""
    import statistics

    from textcls.evaluation import single_timings
    from textcls.inference.predictor import TorchPredictor
    from textcls.model import WEIGHTS_FILE, load_model, save_model
    from textcls.training.fit import write_train_summary

    save_model(directory, model, featurizer, config)
    if trained is not None:
        write_train_summary(directory, trained, config)
    summary_path = directory / "train_result.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if trained is not None else {}
    summary.update(data=source, pruned_from=str(model_dir))
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    reloaded, _, _ = load_model(directory)
    texts = [e.as_input() for e in (splits.test or splits.valid)][:100]
    latencies = {}
    for name, path in (("dense", model_dir), ("pruned", directory)):
        net, feat, cfg = load_model(path)
        predictor = TorchPredictor(net, feat, cfg.model.labels)
        latencies[name] = round(statistics.median(single_timings(predictor, texts, 100)), 4)
    weights = directory / WEIGHTS_FILE
    return {
        "directory": str(directory),
        "saved": sparsity(reloaded, names),  # measured after reload
        "size_mb": round(weights.stat().st_size / 1e6, 3),
        "zipped_mb": round(zipped_mb(weights), 3),
        "dense_zipped_mb": round(zipped_mb(model_dir / WEIGHTS_FILE), 3),
        "p50_ms_torch": latencies,
    }


def _write(out: Path, report: dict[str, Any]) -> None:
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "prune.md").write_text(report_markdown(report), encoding="utf-8")
    plot_sparsity(report, out / "prune.png")


def _score(row: dict[str, Any]) -> tuple[str, float]:
    key = "test_accuracy" if "test_accuracy" in row else "valid_accuracy"
    return key.split("_")[0], row[key]


def report_markdown(report: dict[str, Any]) -> str:
    split, dense = _score(report["dense"])
    lines = [
        f"# Pruning {report['model']}",
        "",
        f"{report['scores']} scores, {report['scope']}, over {', '.join(report['params'])} weights; "
        f"schedule {', '.join(f'{s:.1%}' for s in report['schedule'])}; retraining "
        + (
            f"{report['retrain_epochs']} epochs a round."
            if report["retrain_epochs"]
            else "none (closed form)."
        ),
        "",
        f"Dense: {split} accuracy {dense * 100:.2f}, sparsity {report['dense']['sparsity']:.1%}.",
        "",
        f"| method | round | target | sparsity | valid acc | {split} acc | Δ vs dense | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, result in report["methods"].items():
        for row in result["rounds"]:
            _, value = _score(row)
            lines.append(
                f"| {method} | {row['round']} | {row['target']:.1%} | {row['sparsity']:.1%} | "
                f"{row['valid_accuracy'] * 100:.2f} | {value * 100:.2f} | {(value - dense) * 100:+.2f} | "
                f"{row['seconds']:.1f} |"
            )
    lines += [
        "",
        "| method | saved sparsity (after reload) | size MB | zipped MB (dense) | p50 ms torch (dense) |",
    ]
    lines.append("|---|---:|---:|---:|---:|")
    for method, result in report["methods"].items():
        lines.append(
            f"| {method} | {result['saved']['sparsity']:.1%} | {result['size_mb']:.2f} | "
            f"{result['zipped_mb']:.2f} ({result['dense_zipped_mb']:.2f}) | "
            f"{result['p50_ms_torch']['pruned']:.3f} ({result['p50_ms_torch']['dense']:.3f}) |"
        )
    lines += [
        "",
        "Zeros are stored as zeros: the file is as large as the dense one, smaller only compressed, and "
        "dense CPU kernels (PyTorch, ONNX Runtime) run no faster on them.",
    ]
    return "\n".join(lines) + "\n"


def plot_sparsity(report: dict[str, Any], path: Path) -> bool:
    """Accuracy against the share of weights remaining (log scale, the lottery-ticket papers'
    figure), one line a method, the dense model as a dashed line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    split, dense = _score(report["dense"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, result in report["methods"].items():
        remaining = [100 * (1 - r["sparsity"]) for r in result["rounds"]]
        values = [100 * _score(r)[1] for r in result["rounds"]]
        ax.plot([100.0, *remaining], [100 * dense, *values], marker="o", label=method)
    ax.axhline(100 * dense, color="grey", linestyle="--", linewidth=1, label="dense")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
