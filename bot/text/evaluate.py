"""Quality of the classifier in use on a labelled JSONL file (the corpus format).

`evaluate_file(path)` returns the five figures of docs/CLASSIFIER.md and the confusion tables;
`python -m bot.text.evaluate FILE [FILE ...]` prints them. Definitions:

- appeal accuracy: share of texts whose is_appeal decision is right; appeal recall: share of
  true appeals decided as appeals;
- topic accuracy: share of true appeals given their topic;
- urgent recall: share of truly urgent appeals decided urgent (which needs them to be decided
  appeals too); urgent precision: share of texts decided urgent that are truly urgent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.text.classifier import Classifier
from bot.text.corpus import Example, load_corpus
from bot.text.features import TOPICS

__all__ = ["evaluate_examples", "evaluate_file", "format_report"]


def _confusion(
    pairs: Sequence[tuple[str, str]], labels: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Confusion table: truth → predicted → count."""
    table = {truth: dict.fromkeys(labels, 0) for truth in labels}
    for truth, predicted in pairs:
        table[truth][predicted] += 1
    return table


def _share(hits: int, total: int) -> float | None:
    """hits / total rounded, None when there is nothing to count."""
    return round(hits / total, 4) if total else None


def evaluate_examples(
    examples: Sequence[Example], classifier: Classifier | None = None
) -> dict[str, Any]:
    """Classify the examples (with the classifier in use by default) and compute the figures."""
    from bot.text import classify

    if classifier is None:
        results = [classify(example.text) for example in examples]
    else:
        results = [classifier.classify(example.text) for example in examples]
    appeal_pairs = [
        (str(e.is_appeal).lower(), str(r.is_appeal).lower())
        for e, r in zip(examples, results, strict=True)
    ]
    appeals = [(e, r) for e, r in zip(examples, results, strict=True) if e.is_appeal]
    topic_pairs = [(e.topic or "other", r.topic) for e, r in appeals]
    urgent_pairs = [
        (str(e.urgent and e.is_appeal).lower(), str(r.urgent).lower())
        for e, r in zip(examples, results, strict=True)
    ]
    true_urgent = [r for e, r in zip(examples, results, strict=True) if e.is_appeal and e.urgent]
    flagged = [e for e, r in zip(examples, results, strict=True) if r.urgent]
    return {
        "texts": len(examples),
        "appeals": len(appeals),
        "urgent": len(true_urgent),
        "appeal_accuracy": _share(sum(t == p for t, p in appeal_pairs), len(examples)),
        "appeal_recall": _share(sum(r.is_appeal for _, r in appeals), len(appeals)),
        "topic_accuracy": _share(sum(t == p for t, p in topic_pairs), len(appeals)),
        "urgent_recall": _share(sum(r.urgent for r in true_urgent), len(true_urgent)),
        "urgent_precision": _share(sum(e.is_appeal and e.urgent for e in flagged), len(flagged)),
        "confusion": {
            "appeal": _confusion(appeal_pairs, ["true", "false"]),
            "topic": _confusion(topic_pairs, list(TOPICS)),
            "urgent": _confusion(urgent_pairs, ["true", "false"]),
        },
    }


def evaluate_file(path: Path | str) -> dict[str, Any]:
    """Evaluate the classifier in use on a JSONL file of labelled texts."""
    return evaluate_examples(load_corpus(Path(path)))


FIGURES = (
    "appeal_accuracy",
    "appeal_recall",
    "topic_accuracy",
    "urgent_recall",
    "urgent_precision",
)


def _table(table: dict[str, dict[str, int]]) -> str:
    """Render a confusion table (rows: truth, columns: predicted)."""
    labels = list(table)
    width = max(len("truth \\ predicted"), *(len(label) for label in labels)) + 1
    head = "truth \\ predicted".ljust(width) + "".join(label[:9].rjust(10) for label in labels)
    rows = [
        truth.ljust(width) + "".join(str(table[truth][p]).rjust(10) for p in labels)
        for truth in labels
    ]
    return "\n".join([head, *rows])


def format_report(name: str, report: dict[str, Any]) -> str:
    """A plain-text report: the figures and the three confusion tables."""
    lines = [
        f"{name}: {report['texts']} texts, {report['appeals']} appeals, {report['urgent']} urgent",
        "  " + ", ".join(f"{key} {report[key]}" for key in FIGURES),
    ]
    for key in ("appeal", "topic", "urgent"):
        lines.append(f"{key}:")
        lines.append(_table(report["confusion"][key]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures and confusion tables of every file given."""
    parser = argparse.ArgumentParser(description="Evaluate the classifier on labelled JSONL.")
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    for path in args.files:
        if not path.exists():
            print(f"no such file: {path}", file=sys.stderr)
            return 2
        report = evaluate_file(path)
        if args.json:
            print(json.dumps({"file": str(path), **report}, ensure_ascii=False))
        else:
            print(format_report(str(path), report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
