"""Build the package corpus and train the shipped text classifier model from its training part.

Usage:
  python scripts/train_classifier.py [--rebuild-corpus FILE.jsonl ...]
      [--add-to-training FILE.jsonl ...] [--extra FILE ...] [--quick] [--out PATH]

--rebuild-corpus merges the current package corpus (corpus_dev.jsonl + corpus_heldout.jsonl)
with the given JSONL files (duplicates dropped, the first label kept), splits the result 80/20
stratified by (is_appeal, topic, urgent) with a fixed seed and rewrites both files.
--add-to-training appends the given files to the training part only (how an evaluated blind set
joins it): texts already in either part are dropped, the held-out part is not touched.
Training reads only corpus_dev.jsonl (the training part) plus --extra files; the held-out part
is never read for training or tuning. --quick skips the hyper-parameter search (keeps the
current model's hyper-parameters). --calibrate only refits the confidence temperature of the
model at --out on out-of-fold scores of the training part (weights and decisions unchanged).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.text.classifier import MODEL_PATH
from bot.text.corpus import (
    DEV_CORPUS,
    HELDOUT_CORPUS,
    load_corpus,
    merge_corpora,
    split_stratified,
    text_key,
    write_corpus,
)
from bot.text.training import SEED, Hyper, analyse, builtin_hyper, out_of_fold, temperature, train

HELDOUT_SHARE = 0.2


def rebuild(sources: list[Path]) -> None:
    """Merge, deduplicate and split the corpus into the package's two files."""
    parts = [load_corpus(DEV_CORPUS), load_corpus(HELDOUT_CORPUS)]
    parts += [load_corpus(path) for path in sorted(sources)]
    merged, dropped = merge_corpora(parts)
    train_part, heldout = split_stratified(merged, HELDOUT_SHARE, SEED)
    write_corpus(DEV_CORPUS, train_part)
    write_corpus(HELDOUT_CORPUS, heldout)
    print(
        json.dumps(
            {
                "merged": len(merged),
                "duplicates_dropped": dropped,
                "train": len(train_part),
                "heldout": len(heldout),
            }
        )
    )


def add_to_training(sources: list[Path]) -> None:
    """Append files to the training part; texts already in either part are dropped."""
    train_part = load_corpus(DEV_CORPUS)
    known = {text_key(e.text) for e in [*train_part, *load_corpus(HELDOUT_CORPUS)]}
    new, dropped = merge_corpora(load_corpus(path) for path in sources)
    added = [e for e in new if text_key(e.text) not in known]
    dropped += len(new) - len(added)
    write_corpus(DEV_CORPUS, [*train_part, *added])
    print(json.dumps({"added": len(added), "duplicates_dropped": dropped}))


def calibrate(path: Path) -> int:
    """Refit the confidence temperature of the model at path (out of fold, training part)."""
    model = json.loads(path.read_text("utf-8"))
    examples = load_corpus(DEV_CORPUS)
    hyper = Hyper.from_dict(model["hyper"])
    oof = out_of_fold(analyse(examples), examples, hyper)
    value = temperature(oof, examples, hyper.appeal_shift)
    model["hyper"]["appeal_temperature"] = value
    model["linear"]["appeal_temperature"] = value
    data = json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    path.write_text(data, "utf-8")
    print(json.dumps({"appeal_temperature": value}))
    return 0


def main() -> int:
    """Optionally rebuild the corpus; train and write the model JSON; print the CV figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rebuild-corpus", type=Path, nargs="+", default=[])
    parser.add_argument("--add-to-training", type=Path, nargs="+", default=[])
    parser.add_argument("--extra", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.calibrate:
        return calibrate(args.out)
    if args.rebuild_corpus:
        rebuild(args.rebuild_corpus)
    if args.add_to_training:
        add_to_training(args.add_to_training)
    examples = load_corpus(DEV_CORPUS)
    for path in args.extra:
        examples.extend(load_corpus(path))
    started = time.perf_counter()
    model, report = train(examples, builtin_hyper() if args.quick else None, not args.quick)
    seconds = time.perf_counter() - started
    data = json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    args.out.write_text(data, "utf-8")
    print(
        json.dumps(
            {
                "examples": len(examples),
                "seconds": round(seconds, 1),
                **report,
                "hyper": model["hyper"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
