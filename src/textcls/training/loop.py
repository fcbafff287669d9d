"""One plain training loop you can read top to bottom.

Accelerate places the model and batches (CPU, one or several GPUs, mixed precision) without any
change here. Each epoch ends with a validation pass; the best model is kept, the last state is
checkpointed atomically (also every ``save_steps`` optimizer steps), and ``resume=True``
continues from that checkpoint, mid-epoch included, to the same model as an uninterrupted run.

Launched by ``accelerate launch --num_processes N`` or ``torchrun --nproc_per_node N`` (gloo on
CPU, NCCL on GPUs), every process builds the same batches and takes its share of each one; the
gradients are averaged (DistributedDataParallel), weighted so a step equals one process's step on
the whole batch. Validation is split across the processes and gathered, each example once. Only
the main process writes checkpoints, logs and the model directory.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.config import TrainConfig
from textcls.data.batching import length_grouped_batches
from textcls.inference.predictor import predict_logits
from textcls.progress import ProgressBar
from textcls.training import on_cpu
from textcls.training.checkpoint import (
    INIT_FILE,
    REWIND_FILE,
    find_checkpoint,
    load_checkpoint,
    remove_checkpoint,
    rewind_point,
    save_checkpoint,
    save_weights,
)
from textcls.training.loggers import MetricLogger
from textcls.training.schedule import make_schedule, step_batches

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoint"


@dataclass
class TrainResult:
    best_metric: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0
    steps: int = 0  # optimizer steps (batches / grad_accum)
    extra: dict[str, Any] = field(default_factory=dict)  # statistics the caller adds


def set_seed(seed: int) -> None:
    from accelerate.utils import set_seed as accelerate_set_seed

    accelerate_set_seed(seed)


def class_weights(label_ids: Sequence[int], num_labels: int) -> torch.Tensor:
    """'balanced' weights: n_samples / (n_classes * count(c)); unseen classes get weight 1."""
    counts = np.bincount(np.asarray(label_ids), minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, len(label_ids) / (num_labels * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def planned_epochs(config: TrainConfig, steps_per_epoch: int) -> int:
    """``epochs``, or with ``target_steps`` the passes that reach that many optimizer steps
    (at least 3, at most ``epochs``): many classes from little data need steps, not epochs."""
    if not config.target_steps:
        return config.epochs
    epochs = min(config.epochs, max(3, -(-config.target_steps // max(1, steps_per_epoch))))
    log.info(
        "%d epochs: %d steps per epoch, target %d steps (at most %d epochs)",
        epochs,
        steps_per_epoch,
        config.target_steps,
        config.epochs,
    )
    return epochs


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (fused: one kernel over all parameters, 2-5x faster steps on CPU for large
    embeddings), or plain SGD, which also takes sparse embedding gradients (fastText's recipe)."""
    from textcls.errors import ConfigError

    groups = _param_groups(model, config.weight_decay, config.lr, config.backbone_lr)
    sparse = any(m.sparse for m in model.modules() if isinstance(m, nn.Embedding))
    if config.optimizer == "sgd":
        if sparse and config.weight_decay:
            raise ConfigError("sparse embeddings train with weight_decay 0 (SGD cannot decay sparse rows)")
        return torch.optim.SGD(groups, lr=config.lr)
    if sparse:
        raise ConfigError("sparse embeddings need --optimizer sgd (AdamW takes dense gradients only)")
    return torch.optim.AdamW(groups, lr=config.lr, fused=True)


class ClassificationLoss(nn.Module):
    """The loss of every model, decided by its config: cross-entropy over one label per text
    (class weights, label smoothing; gold id -1, a training text without a label in
    distillation, is ignored), or for multi-label binary cross-entropy per label on multi-hot
    targets (``pos_weight``)."""

    def __init__(
        self,
        num_labels: int,
        multi_label: bool = False,
        weight: torch.Tensor | None = None,
        pos_weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_labels, self.multi_label = num_labels, multi_label
        if multi_label:
            self.loss: nn.Module = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        else:
            self.loss = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing, ignore_index=-1)

    @property
    def weight(self) -> torch.Tensor | None:
        """The class weights (one label per text), or None."""
        return getattr(self.loss, "weight", None)

    @property
    def pos_weight(self) -> torch.Tensor | None:
        """The positives' weight per label (multi-label), or None."""
        return getattr(self.loss, "pos_weight", None)

    def targets(self, gold: Sequence[Any], device: Any = None) -> torch.Tensor:
        """Gold ids (one per text) as a tensor, or label-id tuples as a multi-hot matrix."""
        if not self.multi_label:
            return torch.as_tensor(list(gold), device=device)
        from textcls.decision import multi_hot

        return torch.from_numpy(multi_hot(gold, self.num_labels)).to(device)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, targets)


def make_loss(
    config: TrainConfig, train_labels: Sequence[Any], num_labels: int, multi_label: bool = False
) -> ClassificationLoss:
    """The config's loss; ``class_weight: balanced`` weights classes (one label per text) or each
    label's positives by negatives / positives, clipped to [1, 100] (multi-label: a label positive
    in half the texts or more keeps 1, its positives are never weighted down)."""
    if multi_label:
        pos_weight = None
        if config.class_weight:
            from textcls.decision import POS_WEIGHT_CAP, multi_hot

            positives = multi_hot(train_labels, num_labels).sum(0).astype(np.float64)
            ratio = (len(train_labels) - positives) / np.maximum(positives, 1)
            pos_weight = torch.tensor(np.clip(ratio, 1.0, POS_WEIGHT_CAP), dtype=torch.float32)
        return ClassificationLoss(num_labels, True, pos_weight=pos_weight)
    known = [label for label in train_labels if label >= 0]
    weight = class_weights(known, num_labels) if config.class_weight else None
    return ClassificationLoss(num_labels, weight=weight, label_smoothing=config.label_smoothing)


def _param_groups(
    model: nn.Module, weight_decay: float, lr: float, backbone_lr: float | None
) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and embeddings (unseen pretrained rows keep their values);
    a pretrained transformer's weights may get their own learning rate."""
    backbone = model.backbone_parameter_names() if hasattr(model, "backbone_parameter_names") else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not (param.ndim < 2 or "embedding" in name or "LayerNorm" in name)
        groups.setdefault((name in backbone, decay), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": weight_decay if decay else 0.0,
            "lr": (backbone_lr or lr) if in_backbone else lr,
        }
        for (in_backbone, decay), params in sorted(groups.items())
    ]


def validation_metrics(
    logits: np.ndarray, gold: Sequence[Any], multi_label: bool = False
) -> dict[str, float]:
    """Loss, accuracy and macro-F1 (textcls.metrics) of validation logits. Gold ids at or past the
    number of labels are labels never seen in training: errors in accuracy and macro-F1, left out
    of the loss (no logit exists for them). Multi-label (gold: label-id tuples): binary
    cross-entropy, subset accuracy and macro-F1 of the labels at probability 0.5 (before the
    thresholds are tuned)."""
    from textcls.metrics import accuracy, macro_f1

    if multi_label:
        from textcls.decision import multi_hot
        from textcls.metrics import multi_label_scores

        targets = multi_hot(gold, logits.shape[1])
        loss = nn.functional.binary_cross_entropy_with_logits(
            torch.from_numpy(logits), torch.from_numpy(targets)
        )
        scores = multi_label_scores(targets, (logits > 0).astype(np.float32))
        return {"loss": float(loss), "accuracy": scores["subset_accuracy"], "macro_f1": scores["macro_f1"]}
    gold_array = np.asarray(gold)
    known = gold_array < logits.shape[1]
    log_probs = torch.log_softmax(torch.from_numpy(logits[known]), dim=-1)
    picked = log_probs[torch.arange(int(known.sum())), torch.from_numpy(gold_array[known])]
    loss = float(-picked.mean()) if len(picked) else float("nan")
    predicted = logits.argmax(-1)
    return {
        "loss": loss,
        "accuracy": float(accuracy(gold_array.tolist(), predicted.tolist())),
        "macro_f1": macro_f1(gold_array.tolist(), predicted.tolist()),
    }


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def train(
    model: nn.Module,
    featurizer: Any,
    train_data: tuple[Sequence[Any], Sequence[int]],
    valid_data: tuple[Sequence[Any], Sequence[int]],
    config: TrainConfig,
    *,
    out_dir: Path | None = None,
    resume: bool = False,
    logger: MetricLogger | None = None,
    on_best: Callable[[nn.Module], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    soft_loss: Callable[[torch.Tensor, list[int], torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place; at the end it holds the weights of the best validation epoch."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    logger = logger or MetricLogger()
    set_seed(config.seed)
    precision = config.mixed_precision if torch.cuda.is_available() and not config.cpu else "no"
    # a transformer under our own head leaves its pooler out of the forward pass
    unused = getattr(getattr(model, "config", None), "backbone", None) is not None
    ddp = DistributedDataParallelKwargs(find_unused_parameters=unused)
    accelerator = Accelerator(cpu=on_cpu(config.cpu), mixed_precision=precision, kwargs_handlers=[ddp])
    device = accelerator.device
    rank, world = accelerator.process_index, accelerator.num_processes
    main = accelerator.is_main_process
    if world > 1 and main:
        log.info(
            "training on %d processes (%s): each batch is split between them",
            world,
            accelerator.distributed_type,
        )
    progress = progress and main
    train_ids, train_labels = train_data
    lengths = [featurizer.length(item) for item in train_ids]
    batches_per_epoch = -(-len(train_ids) // config.batch_size)
    steps_per_epoch = -(-batches_per_epoch // config.grad_accum)
    num_labels = len(model.config.labels)
    multi_label = bool(model.config.multi_label)

    optimizer = make_optimizer(model, config)
    epochs = planned_epochs(config, steps_per_epoch)
    scheduler = make_schedule(optimizer, config.schedule, steps_per_epoch * epochs, config.warmup_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    loss_fn = make_loss(config, train_labels, num_labels, multi_label).to(device)

    state: dict[str, Any] = {
        "epoch": 0,  # epochs completed
        "batch": 0,  # batches of the next epoch already trained (a mid-epoch checkpoint)
        "epoch_loss": 0.0,  # their summed loss
        "step": 0,
        "best": None,
        "best_epoch": 0,
        "bad_epochs": 0,
        "history": [],
    }
    checkpoint = out_dir / CHECKPOINT_DIR if out_dir else None
    found = find_checkpoint(checkpoint) if resume else None
    if checkpoint and not found and main:
        remove_checkpoint(checkpoint)  # an earlier run's: never resume a fresh run from it
    best_state = copy.deepcopy(accelerator.unwrap_model(model).state_dict())
    if found:
        restored, best_state = load_checkpoint(found, accelerator.unwrap_model(model), optimizer, scheduler)
        state.update(restored)
        where = f", {state['batch']} batches into epoch {state['epoch'] + 1}" if state["batch"] else ""
        log.info("resumed from %s after epoch %d%s (step %d)", found, state["epoch"], where, state["step"])

    def keep(name: str, point: str) -> None:  # a rewind point for textcls prune; main process only
        if main:
            save_weights(out_dir / name, accelerator.unwrap_model(model), point=point)

    def save_state() -> None:
        if checkpoint and main:
            save_checkpoint(
                checkpoint, accelerator.unwrap_model(model), optimizer, scheduler, state, best_state
            )

    rewind = rewind_point(config.rewind_at) if out_dir else None
    if out_dir and not found:
        if config.save_init:  # the weights this run starts from: a lottery ticket rewinds to them
            keep(INIT_FILE, "init")
        if rewind == ("step", 0) or rewind == ("epoch", 0):
            keep(REWIND_FILE, config.rewind_at)
    started = time.perf_counter()
    deadline = started + config.time_limit if config.time_limit else None
    stopped_early = out_of_time = False

    for epoch in range(state["epoch"] + 1, epochs + 1):
        if config.patience and state["bad_epochs"] >= config.patience:
            stopped_early = True
            break
        model.train()
        batches = _every_process_busy(
            length_grouped_batches(lengths, config.batch_size, config.seed + epoch), world
        )
        done, carried = state["batch"], state["epoch_loss"]  # > 0: resumed mid-epoch
        local_loss = 0.0  # this process's share of the summed batch losses since then
        epoch_started = time.perf_counter()
        with ProgressBar(progress, f"epoch {epoch}/{epochs}", len(batches), field="loss") as advance:
            optimizer.zero_grad(set_to_none=True)
            for number, indices in enumerate(batches, start=1):
                if number <= done:
                    continue  # trained before the checkpoint this run resumed from
                shard = _shard(indices, rank, world)
                if not shard:  # never, after _every_process_busy: a process without data would hang
                    continue  # the others in their all-reduce
                items = [train_ids[i] for i in shard]
                batch = {k: v.to(device) for k, v in featurizer.collate(items).items()}
                gold = loss_fn.targets([train_labels[i] for i in shard], device)
                logits = model(batch)["logits"]
                loss = soft_loss(logits, shard, gold) if soft_loss else loss_fn(logits, gold)
                # DDP averages gradients over processes: weight each by its share of the batch
                share = len(shard) * world / len(indices)
                # the step is the mean over all its examples, as one batch of them would give: each
                # batch weighs its share (an epoch's last batch and last step may be short)
                step = step_batches(number - 1, len(batches), config.grad_accum)
                accelerator.backward(loss * share * len(indices) / sum(len(batches[j]) for j in step))
                loss_value = loss.item()
                local_loss += loss_value * share
                advance(loss_value)
                if number % config.grad_accum and number != len(batches):
                    continue  # accumulate gradients over grad_accum batches
                if config.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                if rewind == ("step", state["step"]):  # late rewinding's early point
                    keep(REWIND_FILE, config.rewind_at)
                if state["step"] % 50 == 0 and main:
                    logger.log_metrics(
                        {"train/loss": loss_value, "train/lr": scheduler.get_last_lr()[0]}, state["step"]
                    )
                if config.save_steps and state["step"] % config.save_steps == 0 and number < len(batches):
                    state.update(batch=number, epoch_loss=carried + _mean(accelerator, local_loss))
                    save_state()  # mid-epoch: --resume loses at most save_steps steps
                if deadline is not None and _any(accelerator, time.perf_counter() > deadline):
                    out_of_time = True  # this epoch ends here; it is still validated
                    break

        total_loss = carried + _mean(accelerator, local_loss)  # the whole batches' losses, summed
        state.update(batch=0, epoch_loss=0.0)
        train_seconds = time.perf_counter() - epoch_started
        if rewind == ("epoch", epoch):
            keep(REWIND_FILE, config.rewind_at)
        valid_logits = gathered_logits(
            accelerator, model, featurizer, valid_data[0], max(64, config.batch_size)
        )
        metrics = validation_metrics(valid_logits, valid_data[1], multi_label)
        metrics["train_loss"] = total_loss / max(1, len(batches))
        if main:
            logger.log_metrics({f"valid/{k}": v for k, v in metrics.items()}, state["step"])
        record = {
            "epoch": epoch,
            **metrics,
            "train_seconds": round(train_seconds, 2),  # this epoch's optimisation, validation excluded
            "seconds": round(time.perf_counter() - started, 2),  # since the start, validation included
        }
        state["history"].append(record)
        value = metrics[config.metric]
        if _improved(config.metric, value, state["best"]):
            state.update(best=value, best_epoch=epoch, bad_epochs=0)
            best_state = copy.deepcopy(accelerator.unwrap_model(model).state_dict())
            if on_best and main:
                on_best(accelerator.unwrap_model(model))
        else:
            state["bad_epochs"] += 1
        log.info(
            "epoch %d: valid %s, best %s %.4f (epoch %d)",
            epoch,
            ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            config.metric,
            state["best"],
            state["best_epoch"],
        )
        state["epoch"] = epoch
        save_state()
        if on_epoch:  # may raise to stop (a pruned search trial); the checkpoint is already safe
            on_epoch(epoch, metrics)
        if out_of_time or (deadline is not None and _any(accelerator, time.perf_counter() > deadline)):
            out_of_time = True
            log.warning(
                "time limit of %.0f s reached during epoch %d: training stops; best epoch %d kept",
                config.time_limit,
                epoch,
                state["best_epoch"],
            )
            break

    if rewind and main and not (out_dir / REWIND_FILE).exists():
        log.warning(
            "--rewind-at %s was never reached (%d epochs, %d steps): no %s for late rewinding",
            config.rewind_at,
            state["epoch"],
            state["step"],
            REWIND_FILE,
        )
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.load_state_dict(best_state)
    unwrapped.eval()
    result = TrainResult(
        best_metric=float(state["best"]) if state["best"] is not None else float("nan"),
        best_epoch=int(state["best_epoch"]),
        history=list(state["history"]),
        stopped_early=stopped_early or out_of_time,
        seconds=time.perf_counter() - started,
        steps=int(state["step"]),
    )
    if out_of_time:
        result.extra["time_limit_reached"] = True
    if world > 1:  # several processes shared each batch (torchrun, accelerate launch)
        result.extra["processes"] = world
    return result


def _every_process_busy(batches: list[list[int]], world: int) -> list[list[int]]:
    """Batches with at least one example for each of ``world`` processes: a smaller one (the
    remainder) is joined to its neighbour, since a process with nothing to do would skip the
    gradient all-reduce the others wait in.

    >>> _every_process_busy([[0, 1, 2], [3], [4, 5]], 2), _every_process_busy([[3], [0, 1]], 2)
    ([[0, 1, 2, 3], [4, 5]], [[3, 0, 1]])
    """
    if world == 1:
        return batches
    joined: list[list[int]] = []
    for batch in batches:
        if joined and (len(batch) < world or len(joined[-1]) < world):
            joined[-1] = joined[-1] + batch
        else:
            joined.append(batch)
    return joined


def _shard(indices: list[int], rank: int, world: int) -> list[int]:
    """This process's part of a batch: contiguous, the first processes one longer when it does
    not divide; the whole batch without distribution."""
    if world == 1:
        return indices
    size, extra = divmod(len(indices), world)
    start = rank * size + min(rank, extra)
    return indices[start : start + size + (rank < extra)]


def _any(accelerator: Any, flag: bool) -> bool:
    """True when ``flag`` is true on any process (the time limit: all stop at the same step)."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), "max").item())


def _mean(accelerator: Any, value: float) -> float:
    """``value`` summed over the processes / their number (itself on one process)."""
    if accelerator.num_processes == 1:
        return value
    total = accelerator.reduce(torch.tensor([value], dtype=torch.float64, device=accelerator.device), "sum")
    return float(total.item()) / accelerator.num_processes


def gathered_logits(
    accelerator: Any, model: nn.Module, featurizer: Any, encoded: Sequence[Any], batch_size: int
) -> np.ndarray:
    """Logits of ``encoded`` in order; with several processes each predicts every N-th example
    and the parts are gathered, so each example is predicted exactly once."""
    unwrapped = accelerator.unwrap_model(model)
    world, rank = accelerator.num_processes, accelerator.process_index
    if world == 1:
        return predict_logits(unwrapped, featurizer, encoded, batch_size, accelerator.device)
    from accelerate.utils import gather_object

    mine = list(range(rank, len(encoded), world))
    logits = predict_logits(unwrapped, featurizer, [encoded[i] for i in mine], batch_size, accelerator.device)
    parts = gather_object([(mine, logits)])
    width = next((part.shape[1] for _, part in parts if len(part)), 0)
    out = np.zeros((len(encoded), width), np.float32)
    for indices, part in parts:
        if len(indices):
            out[indices] = part
    return out


def fit_closed_form(
    model: nn.Module,
    featurizer: Any,
    train_data: tuple[Sequence[Any], Sequence[int]],
    valid_data: tuple[Sequence[Any], Sequence[int]],
    config: TrainConfig,
    *,
    logger: MetricLogger | None = None,
    on_best: Callable[[nn.Module], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    soft_loss: Any = None,
    **_: Any,
) -> TrainResult:
    """The same contract as :func:`train` for an encoder fitted in closed form (``linear``:
    scikit-learn fits it once; there are no epochs, so no checkpoint and no resume)."""
    if soft_loss is not None:
        from textcls.errors import ConfigError

        raise ConfigError("the linear model is fitted in closed form; distil into fasttext or cnn instead")
    logger = logger or MetricLogger()
    started = time.perf_counter()
    info = model.encoder.fit_closed_form(train_data, valid_data, config.seed)
    seconds = time.perf_counter() - started
    model.eval()
    logits = predict_logits(model, featurizer, valid_data[0], 512, torch.device("cpu"))
    metrics = validation_metrics(logits, valid_data[1], bool(model.config.multi_label))
    logger.log_metrics({f"valid/{k}": v for k, v in metrics.items()}, 1)
    chosen = ", ".join(f"{k} {v}" for k, v in info.items() if not k.startswith("valid_"))
    log.info(
        "fitted in %.1fs (%s): valid %s",
        seconds,
        chosen,
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
    )
    if on_best:
        on_best(model)
    if on_epoch:
        on_epoch(1, metrics)
    record = {"epoch": 1, **metrics, "train_seconds": round(seconds, 2), "seconds": round(seconds, 2)}
    result = TrainResult(
        best_metric=float(metrics[config.metric]), best_epoch=1, history=[record], seconds=seconds, steps=0
    )
    result.extra["fit"] = info
    return result
