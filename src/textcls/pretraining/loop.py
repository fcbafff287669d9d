"""The pretraining loop: steps over length-grouped, dynamically padded batches, gradient
accumulation, a warm-up + decay schedule, validation and an atomic checkpoint every ``save_steps``
(``resume`` continues the same run: weights, optimizer, schedule, RNG and the position in the epoch),
and loss / perplexity / accuracy / tokens-per-second to the training loggers."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from textcls.config import PretrainConfig
from textcls.data.batching import length_grouped_batches, sorted_batches
from textcls.progress import ProgressBar
from textcls.training import on_cpu
from textcls.training.checkpoint import load_checkpoint, save_checkpoint
from textcls.training.loggers import MetricLogger
from textcls.training.schedule import make_schedule, step_batches

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoint"


def evaluate(task: Any, items: list[Any], batch_size: int, device: torch.device) -> dict[str, float]:
    """Validation loss (token-weighted), perplexity and accuracy. Masks and dropout are drawn
    from a fixed generator state so two evaluations of the same weights agree."""
    if not items:
        return {}
    model = task.model_module
    model.eval()
    state = torch.get_rng_state()
    torch.manual_seed(0)
    total = count = correct = scored = 0.0
    with torch.no_grad():
        for indices in sorted_batches([task.length(i) for i in items], batch_size):
            batch = {k: v.to(device) for k, v in task.collate([items[i] for i in indices]).items()}
            loss, stats = task.loss(batch, accuracy=True)
            total += float(loss) * stats["targets"]
            count += stats["targets"]
            correct, scored = correct + stats["correct"], scored + stats["scored"]
    torch.set_rng_state(state)
    model.train()
    loss = total / max(1.0, count)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / max(1.0, scored)}


def run(
    task: Any,
    config: PretrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    logger: MetricLogger | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``task.model_module`` in place; returns the loop's state (history of logged steps and
    validations, steps, tokens, seconds). ``on_step(step)`` runs after each optimizer step."""
    from accelerate import Accelerator

    from textcls.training.loop import _param_groups, set_seed

    logger = logger or MetricLogger()
    set_seed(config.seed)
    accelerator = Accelerator(cpu=on_cpu(config.cpu))
    device = accelerator.device
    model = task.model_module
    lengths = [task.length(item) for item in task.train_items]
    batches_per_epoch = -(-len(lengths) // config.batch_size)
    steps_per_epoch = -(-batches_per_epoch // config.grad_accum)
    total_steps = min(config.max_steps or 10**12, steps_per_epoch * config.epochs)
    new = getattr(task, "new_parameters", set())  # a created MLM head learns at head_lr
    groups = []
    for group in _param_groups(model, config.weight_decay, config.lr, None):
        ids = {id(p) for name, p in model.named_parameters() if name in new}
        fresh = [p for p in group["params"] if id(p) in ids]
        rest = [p for p in group["params"] if id(p) not in ids]
        groups += [{**group, "params": rest}] if rest else []
        groups += [{**group, "params": fresh, "lr": config.head_lr}] if fresh else []
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    scheduler = make_schedule(optimizer, config.schedule, total_steps, config.warmup_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    state: dict[str, Any] = {"step": 0, "epoch": 1, "batch": 0, "tokens": 0, "seconds": 0.0, "history": []}
    checkpoint = out_dir / CHECKPOINT_DIR
    if resume and checkpoint.exists():
        restored, _ = load_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, scheduler)
        state.update(restored)
        log.info("resumed from %s at step %d (epoch %d)", checkpoint, state["step"], state["epoch"])
    elif resume:
        log.warning("--resume: no checkpoint in %s; starting from the beginning", out_dir)
    log.info(
        "pretraining: %d windows, %d steps per epoch, %d steps planned (batch %d x %d accumulated)",
        len(lengths),
        steps_per_epoch,
        total_steps,
        config.batch_size,
        config.grad_accum,
    )
    started = time.perf_counter() - state["seconds"]
    deadline = time.perf_counter() + config.time_limit if config.time_limit else None
    out_of_time = False
    window = {"loss": 0.0, "targets": 0, "correct": 0, "scored": 0, "tokens": 0, "since": time.perf_counter()}

    def validate() -> None:
        metrics = evaluate(task, task.valid_items, max(32, config.batch_size), device)
        if metrics:
            logger.log_metrics({f"pretrain_valid/{k}": v for k, v in metrics.items()}, state["step"])
            state["history"].append({"step": state["step"], "split": "valid", **metrics})
            log.info(
                "step %d: valid loss %.4f, perplexity %.2f, %s %.4f",
                state["step"],
                metrics["loss"],
                metrics["perplexity"],
                task.accuracy_name,
                metrics["accuracy"],
            )

    def checkpoint_now() -> None:
        validate()
        state["seconds"] = time.perf_counter() - started
        task.save(out_dir)
        save_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, scheduler, state, {})

    def collated(indices: list[int]) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in task.collate([task.train_items[i] for i in indices]).items()}

    if not state["history"]:  # a fresh start: the held-out figures before the first step
        validate()
    model.train()
    while state["step"] < total_steps and state["epoch"] <= config.epochs and not out_of_time:
        batches = length_grouped_batches(lengths, config.batch_size, config.seed + state["epoch"])
        description = f"pretrain epoch {state['epoch']}/{config.epochs}"
        with ProgressBar(progress, description, len(batches), field="loss", rate="tokens/s") as advance:
            if state["batch"]:
                advance(0.0, state["batch"])
            optimizer.zero_grad(set_to_none=True)
            group: list[dict[str, torch.Tensor]] = []
            for number in range(state["batch"], len(batches)):
                if not group:  # a step's batches, collated (and masked) up front to count their targets
                    group = [
                        collated(batches[j]) for j in step_batches(number, len(batches), config.grad_accum)
                    ]
                    step_targets = max(1, sum(task.targets(b) for b in group))
                batch = group.pop(0)
                measure = (state["step"] + 1) % config.log_steps == 0
                loss, stats = task.loss(batch, accuracy=measure)
                # the step's loss is the mean over all its targets, as one batch of them would give
                accelerator.backward(loss * (stats["targets"] / step_targets))
                value = float(loss.detach())
                window["loss"] += value * stats["targets"]
                for key in ("targets", "correct", "scored"):
                    window[key] += stats[key]
                tokens = int(batch["attention_mask"].sum())
                window["tokens"] += tokens
                state["tokens"] += tokens
                advance(value, 1, window["tokens"] / max(1e-9, time.perf_counter() - window["since"]))
                last = number + 1 == len(batches)
                if (number + 1) % config.grad_accum and not last:
                    continue
                if config.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["batch"] = 0 if last else number + 1
                if last:
                    state["epoch"] += 1
                if state["step"] % config.log_steps == 0:
                    elapsed = max(1e-9, time.perf_counter() - window["since"])
                    mean = window["loss"] / max(1, window["targets"])
                    record = {
                        "step": state["step"],
                        "split": "train",
                        "loss": mean,
                        "perplexity": math.exp(min(mean, 50.0)),
                        "accuracy": window["correct"] / max(1, window["scored"]),
                        "lr": scheduler.get_last_lr()[0],
                        "tokens_per_s": window["tokens"] / elapsed,
                    }
                    state["history"].append(record)
                    logger.log_metrics(
                        {f"pretrain/{k}": v for k, v in record.items() if k not in ("step", "split")},
                        state["step"],
                    )
                    window = {
                        "loss": 0.0,
                        "targets": 0,
                        "correct": 0,
                        "scored": 0,
                        "tokens": 0,
                        "since": time.perf_counter(),
                    }
                if state["step"] % config.save_steps == 0:
                    checkpoint_now()
                if on_step:
                    on_step(state["step"])
                if state["step"] >= total_steps:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    out_of_time = True
                    log.warning(
                        "time limit of %.0f s reached at step %d: pretraining stops",
                        config.time_limit,
                        state["step"],
                    )
                    break
    if (
        not state["history"]
        or state["history"][-1].get("split") != "valid"
        or state["history"][-1]["step"] != state["step"]
    ):
        checkpoint_now()
    state["seconds"] = time.perf_counter() - started
    state["out_of_time"] = out_of_time
    state["planned_steps"] = total_steps
    return state
