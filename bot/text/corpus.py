"""The labelled corpus format (JSON lines) and the export of press-office corrections into it."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.text.classifier import TOPICS, Classifier
from bot.text.lexicon import DATA_DIR

logger = logging.getLogger(__name__)

DEV_CORPUS = DATA_DIR / "corpus_dev.jsonl"
HELDOUT_CORPUS = DATA_DIR / "corpus_heldout.jsonl"


@dataclass(frozen=True)
class Example:
    """One labelled comment: {"text", "is_appeal", "topic", "urgent"} in the JSONL file."""

    text: str
    is_appeal: bool
    topic: str | None
    urgent: bool

    def to_line(self) -> str:
        """Serialise as one JSON line (without the newline)."""
        return json.dumps(
            {
                "text": self.text,
                "is_appeal": self.is_appeal,
                "topic": self.topic,
                "urgent": self.urgent,
            },
            ensure_ascii=False,
        )


def parse_line(line: str) -> Example:
    """Parse and validate one corpus line; raises ValueError on a bad one."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a corpus line must be a JSON object")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")
    topic = data.get("topic")
    if topic is not None and topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}")
    return Example(
        text=text,
        is_appeal=bool(data.get("is_appeal")),
        topic=topic,
        urgent=bool(data.get("urgent", False)),
    )


def load_corpus(path: Path) -> list[Example]:
    """Read a JSONL corpus file; malformed lines are logged and skipped."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            examples.append(parse_line(line))
        except ValueError as error:
            logger.warning("Skipping corpus line %s:%d: %s", path.name, number, error)
    return examples


def text_key(text: str) -> str:
    """The form under which two texts count as the same (case and spacing ignored)."""
    return " ".join(text.lower().replace("ё", "е").split())


def merge_corpora(parts: Iterable[Iterable[Example]]) -> tuple[list[Example], int]:
    """Concatenate corpora keeping the first example of every text; also the number dropped."""
    seen: set[str] = set()
    merged: list[Example] = []
    dropped = 0
    for part in parts:
        for example in part:
            key = text_key(example.text)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            if not example.is_appeal and (example.topic is not None or example.urgent):
                example = Example(example.text, False, None, False)  # labels of non-appeals
            merged.append(example)
    return merged, dropped


def split_stratified(
    examples: Sequence[Example], heldout_share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split into (train, held-out), stratified by (is_appeal, topic, urgent), reproducibly."""
    strata: dict[tuple[bool, str, bool], list[Example]] = {}
    for example in examples:
        key = (example.is_appeal, example.topic or "", example.urgent)
        strata.setdefault(key, []).append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    heldout: list[Example] = []
    for key in sorted(strata):
        group = sorted(strata[key], key=lambda e: e.text)
        rng.shuffle(group)
        size = round(len(group) * heldout_share)
        heldout.extend(group[:size])
        train.extend(group[size:])
    return train, heldout


def write_corpus(path: Path, examples: Iterable[Example]) -> None:
    """Write examples as JSON lines."""
    path.write_text("".join(e.to_line() + "\n" for e in examples), encoding="utf-8")


def corrections_to_corpus(
    rows: Iterable[tuple[str, bool, str | None]], classifier: Classifier
) -> list[str]:
    """Turn press-office corrections (text, is_appeal, topic) into corpus JSON lines.

    Lines carry no trailing newline. Empty texts are skipped, the same text is kept once
    (the last correction wins). A missing topic of an appeal and the urgency of an appeal
    (corrections do not record it) are filled in by `classifier` (the caller passes the one in
    use: this module does not import the `bot.text` facade, which imports it); an unknown topic
    raises ValueError.
    """
    latest: dict[str, Example] = {}
    for text, is_appeal, topic in rows:
        if not text or not text.strip():
            continue
        if topic is not None and topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}")
        urgent = False
        if is_appeal:
            analysis = classifier.analyze(text)
            topic = topic or classifier.decide(analysis).topic
            urgent = classifier.is_urgent(analysis)
        latest.pop(text, None)  # re-insert so that the order follows the last correction
        latest[text] = Example(text=text, is_appeal=bool(is_appeal), topic=topic, urgent=urgent)
    return [example.to_line() for example in latest.values()]
