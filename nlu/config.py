"""The training data that ships with Huike (`config/nlu/`): Rasa-format intents, synonyms,
regexes and lookup tables, and the affect seed set (`sentiment.yml`, written for Huike).

Only a path is shared with the `config` package; nothing is imported from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from nlu.data import TrainingData, _example_lines, load_rasa_yaml
from nlu.model import AffectData

log = logging.getLogger(__name__)

DEFAULT_TRAINING_DIR = Path(__file__).resolve().parent.parent / "config" / "nlu"
AFFECT_FILE = "sentiment.yml"


def load_training_data(directory: Path | None = None) -> TrainingData:
    """Every Rasa YAML file in the directory except the affect seed set; empty if missing."""
    directory = directory or DEFAULT_TRAINING_DIR
    if not directory.is_dir():
        log.warning("NLU training directory %s not found: intents limited to the FAQ", directory)
        return TrainingData()
    data = TrainingData()
    for file in sorted(directory.glob("*.yml")):
        if file.name != AFFECT_FILE:
            data = data.merge(load_rasa_yaml(file))
    return data


def load_affect_data(directory: Path | None = None) -> AffectData:
    """`sentiment.yml`: {sentiment: {positive: [...], negative: [...]}, anger: {angry: [...], calm: [...]}}."""
    path = (directory or DEFAULT_TRAINING_DIR) / AFFECT_FILE
    if not path.is_file():
        return AffectData()
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    sentiment = doc.get("sentiment") or {}
    anger = doc.get("anger") or {}
    return AffectData(
        sentiment=[(t, 1) for t in _example_lines(sentiment.get("positive"))]
        + [(t, 0) for t in _example_lines(sentiment.get("negative"))],
        anger=[(t, 1) for t in _example_lines(anger.get("angry"))]
        + [(t, 0) for t in _example_lines(anger.get("calm"))],
    )
