"""Train the shipped text classifier model from the repository's development corpus.

Usage: python scripts/train_classifier.py [--extra corrections.jsonl ...] [--out PATH]
Extra JSONL files (e.g. exported press-office corrections) are added to the development part.
The held-out part is never read here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.text.classifier import MODEL_PATH
from bot.text.corpus import DEV_CORPUS, load_corpus
from bot.text.training import train


def main() -> int:
    """Train and write the model JSON; print the cross-validation figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--mode", choices=("stem", "lemma"), default="stem")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    examples = load_corpus(DEV_CORPUS)
    for path in args.extra:
        examples.extend(load_corpus(path))
    model, report = train(examples, mode=args.mode)
    args.out.write_text(json.dumps(model, ensure_ascii=False, separators=(",", ":")), "utf-8")
    print(json.dumps({"examples": len(examples), **report, "params": model["params"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
