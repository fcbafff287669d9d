"""One predictor interface over every backend."""

from textcls.inference.predictor import Predictor, load_predictor

__all__ = ["Predictor", "load_predictor"]
