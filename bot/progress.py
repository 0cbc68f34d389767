"""Progress bars on stderr that log lines never cut through.

A log record written while a tqdm bar is drawn lands in the middle of the bar's line and the
bar is redrawn below it, so a terminal fills with half bars. `progress_bar` routes every
handler of the root logger through `tqdm.write` while the bar lives (tqdm's
`logging_redirect_tqdm`), so a log line appears above the bar and the bar stays one line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


@contextlib.contextmanager
def progress_bar(
    *, total: float | None, desc: str, unit: str, enabled: bool = True, **options: Any
) -> Iterator[tqdm[Any]]:
    """A tqdm bar on stderr, in Russian words, with log records written above it."""
    with (
        tqdm(
            total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, **options
        ) as bar,
        logging_redirect_tqdm(loggers=[logging.getLogger()]) if enabled else _nothing(),
    ):
        yield bar


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield
