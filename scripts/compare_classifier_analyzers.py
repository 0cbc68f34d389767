"""Compare classifier candidates on the held-out part (docs/CLASSIFIER.md, «Candidates»).

Usage: python scripts/compare_classifier_analyzers.py [--json]

Every candidate is trained on the training part (corpus_dev.jsonl) with the shipped model's
regularisation and decision shifts re-chosen by cross-validation on the training part, and
evaluated once on the held-out part. Also prints the time to train each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.text.classifier import Classifier
from bot.text.corpus import DEV_CORPUS, HELDOUT_CORPUS, load_corpus
from bot.text.evaluate import FIGURES, evaluate_examples
from bot.text.training import (
    APPEAL_RECALL_TARGET,
    URGENT_RECALL_TARGET,
    analyse,
    builtin_hyper,
    fit,
    model_dict,
    out_of_fold,
    pick_shift,
)

CANDIDATES: dict[str, dict[str, object]] = {
    "linear: word n-grams": {
        "blocks": ("sparse",),
        "urgent_blocks": ("sparse",),
        "char_ngrams": False,
    },
    "linear: word + char n-grams": {"blocks": ("sparse",), "urgent_blocks": ("sparse",)},
    "linear: n-grams + lexicons/concepts": {
        "blocks": ("sparse", "dense"),
        "urgent_blocks": ("sparse", "dense"),
    },
    "linear: n-grams + lexicons/concepts + navec": {},
}


def main() -> int:
    """Train and evaluate every candidate; print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    train_part = load_corpus(DEV_CORPUS)
    heldout = load_corpus(HELDOUT_CORPUS)
    analyses = analyse(train_part)
    shipped = builtin_hyper()
    rows: list[dict[str, object]] = []
    lexicons_only = Classifier(model=None)
    rows.append(
        {"candidate": "lexicons only", **_figures(evaluate_examples(heldout, lexicons_only))}
    )
    for name, overrides in CANDIDATES.items():
        started = time.perf_counter()
        hyper = replace(shipped, **overrides)  # type: ignore[arg-type]
        oof = out_of_fold(analyses, train_part, hyper)
        appeals = [i for i, e in enumerate(train_part) if e.is_appeal]
        hyper = replace(
            hyper,
            appeal_shift=pick_shift(
                oof.appeal, [e.is_appeal for e in train_part], APPEAL_RECALL_TARGET
            ),
            urgent_shift=pick_shift(
                oof.urgent[appeals], [train_part[i].urgent for i in appeals], URGENT_RECALL_TARGET
            ),
        )
        model = fit(analyses, train_part, hyper)
        seconds = time.perf_counter() - started
        classifier = Classifier(model=model_dict(model, hyper, len(train_part)))
        report = evaluate_examples(heldout, classifier)
        rows.append({"candidate": name, **_figures(report), "train_s_with_cv": round(seconds, 1)})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print("| candidate | " + " | ".join(FIGURES) + " |")
        print("|---|" + "---|" * len(FIGURES))
        for row in rows:
            print(f"| {row['candidate']} | " + " | ".join(f"{row[k]:.3f}" for k in FIGURES) + " |")
    return 0


def _figures(report: dict[str, object]) -> dict[str, object]:
    return {key: report[key] for key in FIGURES}


if __name__ == "__main__":
    raise SystemExit(main())
