"""``TextClassifier``: the estimator users hold — configure, fit, predict, evaluate, save, load."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textcls.config import ClassifierConfig, deep_update, read_config_file
from textcls.data.formats import Example
from textcls.errors import ConfigError, DataError
from textcls.registry import DEFAULT_MODEL, PRESETS

log = logging.getLogger(__name__)

TrainData = str | Path | Sequence[Example] | Sequence[tuple[str, str]]


def build_config(
    model: str | None = None,
    encoder: str | None = None,
    vectors: str | None = None,
    config: ClassifierConfig | dict | str | Path | None = None,
    **overrides: Any,
) -> ClassifierConfig:
    """Merge, lowest to highest priority: defaults, a config file/dict, the preset, explicit args.

    Without a model and without a config, the model is the ``cnn`` preset."""
    if model is None and config is None:
        model = DEFAULT_MODEL
    if isinstance(config, ClassifierConfig):
        data = config.model_dump()
    elif isinstance(config, dict):
        data = dict(config)
    elif config is not None:
        data = read_config_file(config)
    else:
        data = {}
    layers = [dict(data.get("train") or {}), {}]  # training settings of the file, of the arguments
    if model is not None:
        preset = resolve_preset(model)
        # a preset's defaults (training, model parts such as the tokenizer) yield to the file
        data = deep_update({"train": preset.get("train", {}), "model": preset.get("model", {})}, data)
        part: dict[str, Any] = {"encoder": {"name": preset["encoder"]}, "backbone": None}
        if "vectors" in preset:
            part["embedding"] = {"vectors": preset["vectors"]}
        if "backbone" in preset:
            part["backbone"] = {
                **(data.get("model", {}).get("backbone") or {}),
                "name_or_path": preset["backbone"],
            }
        data = deep_update(data, {"model": part})
    if encoder is not None:
        data = deep_update(data, {"model": {"encoder": {"name": encoder}}})
    if vectors is not None:
        data = deep_update(data, {"model": {"embedding": {"vectors": vectors}}})
    from textcls.options import as_update

    for key, value in overrides.items():  # keywords derived from the config fields, or dotted paths
        if value is not None:
            update = as_update(key, value)
            layers[1].update(update.get("train") or {})
            data = deep_update(data, update)
    # a preset plans passes to reach target_steps with epochs as the cap; epochs set above the layer
    # that set target_steps (file over preset, arguments over both) mean exactly that many passes
    level = {
        key: max((i + 1 for i, layer in enumerate(layers) if key in layer), default=0)
        for key in ("epochs", "target_steps")
    }
    if level["epochs"] > level["target_steps"]:
        data = deep_update(data, {"train": {"target_steps": None}})
    backbone = data.get("model", {}).get("backbone")
    if isinstance(backbone, dict) and "name_or_path" not in backbone:
        options = ", ".join(sorted(backbone))
        raise ConfigError(
            f"{options} apply to transformer models only: choose one with --model minilm-l6 or a path"
        )
    result = ClassifierConfig.from_dict(data)
    from textcls.registry import ENCODERS

    encoder = ENCODERS.get(result.model.encoder.name)  # fail early on unknown encoder names
    if getattr(encoder, "reads_ids", False) and result.model.backbone is None:
        # an encoder over a bag of n-gram ids (linear) reads counted tokens, never cut
        result.model.tokenizer.bag = True
    return result


def resolve_preset(model: str) -> dict[str, Any]:
    """A registered preset, or a local Hugging Face model directory (a transformer with ``cls``)."""
    from textcls.registry import TRANSFORMER_TRAIN_DEFAULTS

    if model in PRESETS:
        return PRESETS[model]
    if (Path(model).expanduser() / "config.json").is_file():
        return {"encoder": "cls", "backbone": model, "train": TRANSFORMER_TRAIN_DEFAULTS}
    raise ConfigError(
        f"unknown model '{model}'; choose one of: {', '.join(sorted(PRESETS))}, "
        "or give a local Hugging Face model directory"
    )


class TextClassifier:
    """Train and use a text classifier.

    >>> clf = TextClassifier(model="cnn", vectors="glove-6b-50d", epochs=5)  # doctest: +SKIP
    >>> clf.fit("data/snips")  # doctest: +SKIP
    >>> clf.predict(["play some jazz"])  # doctest: +SKIP
    [{'label': 'PlayMusic', 'score': 0.998}]
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        encoder: str | None = None,
        vectors: str | None = None,
        config: ClassifierConfig | dict | str | Path | None = None,
        **overrides: Any,
    ) -> None:
        """``overrides``: any option by its keyword (``epochs=5``, ``max_length=256``; the list is
        ``textcls.options.keyword_paths()``, one per config field) or by its dotted path in the
        config (``**{"train.lr": 1e-3}``)."""
        self.config = build_config(model, encoder, vectors, config, **overrides)
        self.predictor: Any = None
        self.train_result: Any = None
        self.notes: list[str] = []

    def configure(self, **overrides: Any) -> TextClassifier:
        """Change options of this classifier's config (as in the constructor), e.g. the data
        options of a loaded model before ``evaluate``."""
        from textcls.options import as_update

        data = self.config.model_dump()
        for key, value in overrides.items():
            if value is not None:
                data = deep_update(data, as_update(key, value))
        self.config = ClassifierConfig.from_dict(data)
        return self

    # ----------------------------------------------------------------- training
    def fit(
        self,
        train: TrainData,
        valid: TrainData | None = None,
        *,
        out_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        on_epoch: Any = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        soft_loss: Any = None,
    ) -> TextClassifier:
        """Train on ``train`` (a data directory, a file, or examples), validate on ``valid``
        (carved from train when absent). With ``out_dir`` the best model and a resumable
        checkpoint are written there as training goes. ``on_epoch(epoch, metrics)`` is called
        after each validation; ``run_name`` / ``parent_run_id`` name and nest an MLflow run;
        ``soft_loss`` replaces cross-entropy (see ``textcls.compress.distill``)."""
        from textcls.training import fit as fitting

        train_examples, valid_examples = self._resolve_splits(train, valid)
        data_source = None
        if isinstance(train, str | Path):
            data_source = {
                "data": str(Path(train).resolve()),
                "valid": str(Path(valid).resolve()) if isinstance(valid, str | Path) else None,
                "seed": self.config.train.seed,
            }
        self.predictor, self.train_result, self.config = fitting.fit(
            self.config,
            train_examples,
            valid_examples,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            notes=self.notes,
            data_source=data_source,
            on_epoch=on_epoch,
            run_name=run_name,
            parent_run_id=parent_run_id,
            soft_loss=soft_loss,
        )
        return self

    def _resolve_splits(
        self, train: TrainData, valid: TrainData | None
    ) -> tuple[list[Example], list[Example]]:
        from textcls.data.splits import carve_validation, check_known_labels, load_splits

        data = self.config.data
        seed = self.config.train.seed
        decision = self.config.model.decision  # an abstaining model expects its oos label in valid
        abstains = decision.oos_target_recall is not None or decision.abstain_below is not None
        checked = False  # load_splits reports valid labels unseen in train itself
        if isinstance(train, str | Path):
            splits = load_splits(
                train,
                valid=valid if isinstance(valid, str | Path) else None,
                options=data,
                seed=seed,
                multi_label=self.config.model.multi_label,
                also_known=[decision.oos_label] if abstains else [],
            )
            self.notes += splits.notes
            for note in splits.notes:
                log.info("%s", note)
            if data.format == "auto" and splits.format:
                data.detected_format = splits.format  # saved, so evaluate reads test files alike
            data.label_sep = splits.label_sep  # given or detected: test files are split alike
            train_examples, valid_examples = splits.train, splits.valid
            checked = valid is None or isinstance(valid, str | Path)
            if not checked:
                valid_examples = as_examples(valid)
        else:
            train_examples = as_examples(train)
            if valid is None:
                train_examples, valid_examples = carve_validation(train_examples, data.valid_fraction, seed)
                self.notes.append(
                    f"no validation data: carved {data.valid_fraction:.0%} of train, stratified "
                    f"(seed {seed}): {len(train_examples)} train / {len(valid_examples)} valid"
                )
            else:
                valid_examples = (
                    read_labelled(valid, self.config) if isinstance(valid, str | Path) else as_examples(valid)
                )
        if not checked:
            labels = sorted({label for e in train_examples for label in e.label_set})
            labels += [decision.oos_label] if abstains else []
            note = check_known_labels(valid_examples, labels, "validation data", strict=data.strict_labels)
            if note:
                self.notes.append(note)
        for note in self.notes:
            if "never seen in training" in note:
                log.warning("%s", note)
        return train_examples, valid_examples

    # --------------------------------------------------------------- prediction
    def _require_predictor(self) -> Any:
        if self.predictor is None:
            raise ConfigError("this classifier is not trained yet: call fit() or textcls.load()")
        return self.predictor

    @property
    def labels(self) -> list[str]:
        return list(self._require_predictor().labels)

    def predict(
        self,
        texts: Sequence[str],
        top_k: int | None = None,
        batch_size: int = 64,
        threshold: float | None = None,
    ) -> list:
        """One ``{"label", "score"}`` per text (a ranked list of ``top_k`` when top_k > 1; an
        out-of-scope answer has ``"out_of_scope": true``); multi-label: the list of labels at or
        above their thresholds. ``threshold`` replaces the model's (abstention or labels')."""
        return self._require_predictor().predict(
            texts, top_k=top_k, batch_size=batch_size, threshold=threshold
        )

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> Any:
        """Calibrated probabilities [len(texts), len(labels)] in the order of ``labels`` (rows sum
        to 1; multi-label: one independent probability per label)."""
        return self._require_predictor().predict_proba(texts, batch_size)

    def evaluate(
        self,
        data: TrainData,
        out_dir: str | Path | None = None,
        *,
        latency: bool = True,
        batch_size: int = 64,
        threshold: float | None = None,
    ) -> dict[str, Any]:
        """Metrics on labelled data (a file or examples); writes reports into ``out_dir``.
        ``threshold`` replaces the model's (multi-label: every label's; else the abstention's)."""
        from textcls import evaluation

        if isinstance(data, str | Path):
            examples = read_labelled(data, self.config)
            source = str(data)
        else:
            examples, source = as_examples(data), "examples"
        report = evaluation.evaluate(
            self._require_predictor(),
            examples,
            out_dir,
            latency=latency,
            batch_size=batch_size,
            source=source,
            strict_labels=self.config.data.strict_labels,
            threshold=threshold,
        )
        tracking = (self.train_result.extra if self.train_result is not None else {}).get("tracking")
        if tracking:  # add the evaluation to the training run
            from textcls.training.loggers import reopen

            logger = reopen(tracking)
            prefix = Path(source).stem if source != "examples" else "eval"
            logger.log_metrics({f"{prefix}/{k}": report[k] for k in ("accuracy", "macro_f1", "weighted_f1")})
            if out_dir is not None:
                for name in ("report.json", "report.md", "confusion.png", "reliability.png"):
                    logger.log_artifact(Path(out_dir) / name, f"eval/{prefix}")
        return report

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> None:
        """Write the model directory (config.json, model.safetensors, vocab.txt, labels.json)."""
        from textcls.model import save_model

        predictor = self._require_predictor()
        save_model(directory, predictor.model, predictor.featurizer, self.config)
        if self.train_result is not None:
            from textcls.training.fit import write_train_summary

            write_train_summary(Path(directory), self.train_result, self.config)

    @classmethod
    def load(
        cls, directory: str | Path, backend: str = "torch", threads: int | None = None
    ) -> TextClassifier:
        from textcls.inference.predictor import load_predictor
        from textcls.model import read_model_config

        config = read_model_config(directory)
        classifier = cls(model=None, config=config)
        classifier.predictor = load_predictor(directory, backend=backend, threads=threads)
        return classifier


def load(directory: str | Path, backend: str = "torch", threads: int | None = None) -> TextClassifier:
    """Load a saved model directory: ``textcls.load("runs/snips-cnn").predict(["hi"])``."""
    return TextClassifier.load(directory, backend=backend, threads=threads)


def as_examples(data: Sequence[Example] | Sequence[tuple[str, str]]) -> list[Example]:
    """Accept ``Example`` objects or ``(text, label)`` pairs."""
    examples = []
    for i, item in enumerate(data):
        if isinstance(item, Example):
            examples.append(item)
        elif isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], tuple | list):
            from textcls.data.formats import with_labels  # (text, [labels]): multi-label

            labels = [str(label) for label in item[1]]
            if not labels:
                raise DataError(f"item {i} has an empty label list", path="<in-memory data>")
            examples.append(with_labels(Example(text=str(item[0]), line=i + 1), labels))
        elif isinstance(item, tuple | list) and len(item) == 2:
            examples.append(Example(text=str(item[0]), label=str(item[1]), line=i + 1))
        else:
            raise DataError(
                f"item {i} is {type(item).__name__}, expected Example, (text, label) or (text, [labels])",
                path="<in-memory data>",
            )
    if not examples:
        raise DataError("no examples given", path="<in-memory data>")
    return examples


def read_labelled(
    path: str | Path, config: ClassifierConfig, notes: list[str] | None = None
) -> list[Example]:
    """A labelled file read with a model's data options (the path every verb shares)."""
    from textcls.data.splits import read_data_file

    notes = [] if notes is None else notes
    examples = read_data_file(path, config.data, notes=notes)
    for note in notes:
        log.info("%s", note)
    return examples
