"""Garbage-collector settings for the long-running processes (docs/BENCHMARKS.md).

CPython's cycle collector runs its youngest generation every 700 allocations and, as objects
survive, scans older ones too; with the hundreds of thousands of objects a running bot holds
(aiogram's types, SQLAlchemy's mappers, the classifier's dictionaries) that scanning cost the
intake about a third of its time per update. After start-up everything loaded is frozen out of
the collector's sight (`gc.freeze`) and collections are made rarer. Reference counting still
frees almost everything at once; only cycles wait a little longer.
"""

from __future__ import annotations

import gc

# Objects allocated (minus freed) before the youngest generation is collected; then how many
# collections of one generation before the next older one is collected too.
THRESHOLDS = (10_000, 50, 50)


def settle_after_start() -> None:
    """Collect once, freeze what start-up loaded, and collect less often from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def release_freed() -> None:
    """Collect, and hand the heap's freed pages back to the system (glibc's malloc_trim).

    Loading the classifier parses a JSON file of a few MB into Python lists of floats that are
    turned into numpy arrays and dropped; CPython frees them, but glibc keeps the pages in the
    process until asked. Elsewhere than glibc this only collects.
    """
    gc.collect()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
