"""Classifier throughput benchmark (`otklik bench` part; also `python -m bot.text.bench`)."""

from __future__ import annotations

import json
import os
import platform
import time

from bot.text.classifier import Classifier
from bot.text.corpus import DEV_CORPUS, HELDOUT_CORPUS, load_corpus

__all__ = ["run_benchmark"]


def _texts() -> list[str]:
    """Return the corpus texts, also CAPS and unpunctuated variants, so caches are not trivial."""
    texts = [example.text for path in (DEV_CORPUS, HELDOUT_CORPUS) for example in load_corpus(path)]
    variants = [text.upper() for text in texts] + [
        text.replace(",", "").replace(".", "") + " !!!" for text in texts
    ]
    return texts + variants


def run_benchmark(seconds: float = 2.0) -> dict[str, object]:
    """Measure single-thread classifications per second (cold start and warm) on this machine."""
    started = time.perf_counter()
    classifier = Classifier.load()
    load_s = time.perf_counter() - started
    texts = _texts()
    started = time.perf_counter()
    for text in texts:  # first pass: every word is new to the caches
        classifier.classify(text)
    cold_s = time.perf_counter() - started
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for text in texts:
            classifier.classify(text)
        count += len(texts)
    warm_s = time.perf_counter() - started
    return {
        "texts_per_second": round(count / warm_s),
        "cold_texts_per_second": round(len(texts) / cold_s),
        "distinct_texts": len(texts),
        "load_seconds": round(load_s, 3),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    print(json.dumps(run_benchmark(), ensure_ascii=False, indent=2))
