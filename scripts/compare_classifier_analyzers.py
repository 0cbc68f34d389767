"""Measure Snowball stems against pymorphy3 lemmas for the classifier, on the development corpus.

Usage: python scripts/compare_classifier_analyzers.py
Quality is 5-fold cross-validation on the development part (the held-out part is not read);
speed is words per second without caches and texts per second through the whole classifier.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.text.classifier import Classifier
from bot.text.corpus import DEV_CORPUS, load_corpus
from bot.text.normalize import Analyzer, words
from bot.text.training import train


def measure(mode: str) -> dict[str, object]:
    """Cross-validated quality and speed of one analyzer mode."""
    examples = load_corpus(DEV_CORPUS)
    all_words = [word for example in examples for word in words(example.text)]
    analyzer = Analyzer(mode)
    base = analyzer._base  # the raw stemmer/lemmatiser, bypassing the cache
    started = time.perf_counter()
    for word in all_words:
        base(word)
    raw_words_per_second = len(all_words) / (time.perf_counter() - started)
    model, report = train(examples, mode=mode)
    started = time.perf_counter()
    classifier = Classifier(mode=mode, model=model)
    texts = [example.text for example in examples]
    for text in texts:
        classifier.classify(text)
    cold = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    rounds = 10
    for _ in range(rounds):
        for text in texts:
            classifier.classify(text)
    warm = rounds * len(texts) / (time.perf_counter() - started)
    return {
        "mode": mode,
        **report,
        "raw_words_per_second": round(raw_words_per_second),
        "cold_texts_per_second": round(cold),
        "warm_texts_per_second": round(warm),
        "distinct_keys": len({analyzer.base(word) for word in all_words}),
        "params": model["params"],
    }


def main() -> int:
    """Print the comparison as JSON."""
    print(json.dumps([measure("stem"), measure("lemma")], ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
