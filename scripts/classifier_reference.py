"""Write tests/data/classifier_reference.json: the shipped model's decisions on the corpus.

tests/test_classifier_reference.py compares the classifier with this file, so that a change
made for speed cannot change a decision. Run it again only after the model (model.json), the
lexicons or the corpus changed on purpose:

    .venv/bin/python scripts/classifier_reference.py

One row per text of corpus_dev.jsonl + corpus_heldout.jsonl, in file order:
[is_appeal, topic index, urgent, confidence as classify() returns it, confidence unrounded].
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.text.classifier import MODEL_PATH, TOPICS, Classifier  # noqa: E402
from bot.text.corpus import DEV_CORPUS, HELDOUT_CORPUS, load_corpus  # noqa: E402

REFERENCE = ROOT / "tests" / "data" / "classifier_reference.json"


def reference_texts() -> list[str]:
    """The texts the reference covers, in order."""
    return [example.text for path in (DEV_CORPUS, HELDOUT_CORPUS) for example in load_corpus(path)]


def digest(data: bytes) -> str:
    """Short sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> None:
    """Classify every text and write the reference file."""
    classifier = Classifier.load()
    texts = reference_texts()
    rows = []
    for text in texts:
        result, confidence = classifier.decide_unrounded(classifier.analyze(text))
        assert result == classifier.classify(text)
        rows.append(
            [
                int(result.is_appeal),
                TOPICS.index(result.topic),
                int(result.urgent),
                result.confidence,
                round(confidence, 9),
            ]
        )
    lines = [
        "{",
        f'"model_sha256": "{digest(MODEL_PATH.read_bytes())}",',
        f'"texts_sha256": "{digest(json.dumps(texts, ensure_ascii=False).encode())}",',
        '"rows": [',
        ",\n".join(json.dumps(row) for row in rows),
        "]}",
    ]
    REFERENCE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{REFERENCE}: {len(rows)} texts")


if __name__ == "__main__":
    main()
