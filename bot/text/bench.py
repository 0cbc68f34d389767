"""Classifier benchmark (`otklik bench` part; also `python -m bot.text.bench`).

Speed and memory are measured in a fresh child process, so that the figures are the
classifier's own: the time to load the model (lexicons, navec, weights), the resident memory
after loading and classifying, texts per second on one thread cold (caches empty) and warm.
Quality is the held-out part of the corpus and, when the lead has put it there, the blind set
(`tests/data/classifier_blind.jsonl`), side by side.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["BLIND_SET", "run_benchmark", "run_quality"]

BLIND_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "classifier_blind.jsonl"


def _texts() -> list[str]:
    """Return the corpus texts, also CAPS and unpunctuated variants, so caches are not trivial."""
    from bot.text.corpus import DEV_CORPUS, HELDOUT_CORPUS, load_corpus

    texts = [example.text for path in (DEV_CORPUS, HELDOUT_CORPUS) for example in load_corpus(path)]
    variants = [text.upper() for text in texts] + [
        text.replace(",", "").replace(".", "") + " !!!" for text in texts
    ]
    return texts + variants


def _rss_mb() -> float:
    """Resident memory of this process in MB (VmRSS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(seconds: float = 2.0) -> dict[str, Any]:
    """Run in a fresh process: load, cold pass, warm passes, memory."""
    before = _rss_mb()
    started = time.perf_counter()
    from bot.text.classifier import Classifier

    classifier = Classifier.load()
    load_s = time.perf_counter() - started
    texts = _texts()
    texts_mb = (sys.getsizeof(texts) + sum(sys.getsizeof(text) for text in texts)) / 2**20
    started = time.perf_counter()
    for text in texts:  # first pass: every word is new to the caches
        classifier.classify(text)
    cold_s = time.perf_counter() - started
    count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    while time.perf_counter() - started < seconds:
        for text in texts:
            classifier.classify(text)
        count += len(texts)
    warm_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    return {
        "texts_per_second": round(count / warm_s),
        # On a machine shared with other work the wall clock counts other processes' time too;
        # per CPU second is the classifier's own single-core rate.
        "texts_per_cpu_second": round(count / cpu_s),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cold_texts_per_second": round(len(texts) / cold_s),
        "distinct_texts": len(texts),
        "load_seconds": round(load_s, 3),
        # The benchmark's own texts (35,000 strings, ~11 MB) are not the classifier's memory.
        "rss_mb": round(_rss_mb() - texts_mb, 1),
        "rss_with_texts_mb": round(_rss_mb(), 1),
        "rss_python_baseline_mb": round(before, 1),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def run_benchmark(seconds: float = 2.0) -> dict[str, Any]:
    """Speed and memory of the classifier, measured in a child process."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bot.text.bench", "--measure", str(seconds)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_quality() -> dict[str, dict[str, Any]]:
    """Held-out figures (and the blind set's, if present) of the classifier in use."""
    from bot.text.corpus import HELDOUT_CORPUS
    from bot.text.evaluate import evaluate_file

    quality = {"heldout": evaluate_file(HELDOUT_CORPUS)}
    if BLIND_SET.exists():
        quality["blind"] = evaluate_file(BLIND_SET)
    return quality


_FIGURE_NAMES_RU = {
    "appeal_accuracy": "обращения: доля верных",
    "appeal_recall": "обращения: полнота",
    "topic_accuracy": "темы: доля верных",
    "urgent_recall": "срочные: полнота",
    "urgent_precision": "срочные: точность",
}
_SET_NAMES_RU = {"heldout": "отложенная часть", "blind": "слепой набор"}


def summary_lines(speed: dict[str, Any], quality: dict[str, dict[str, Any]]) -> list[str]:
    """The classifier lines of `otklik bench` (in Russian, as the rest of its output)."""
    from bot.text.evaluate import FIGURES

    lines = [
        f"классификатор: {speed['texts_per_second']} текстов/с в одном потоке "
        f"({speed['texts_per_cpu_second']} на секунду процессора; без кэшей "
        f"{speed['cold_texts_per_second']}), загрузка модели {speed['load_seconds']} с, "
        f"память {speed['rss_mb']} МБ (средняя загрузка машины {speed['load_average_1min']})"
    ]
    names = list(quality)
    lines.append(
        "качество классификатора: "
        + " | ".join(f"{_SET_NAMES_RU.get(n, n)} ({quality[n]['texts']})" for n in names)
    )
    for key in FIGURES:
        lines.append(
            f"  {_FIGURE_NAMES_RU[key]:<24}" + "".join(f"{quality[n][key]!s:>12}" for n in names)
        )
    return lines


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--measure":
        print(json.dumps(measure(float(sys.argv[2]) if len(sys.argv) > 2 else 2.0)))
    else:
        speed = run_benchmark()
        quality = run_quality()
        print("\n".join(summary_lines(speed, quality)))
        print(json.dumps(speed, ensure_ascii=False))
