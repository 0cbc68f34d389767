"""Regenerate `0001_initial` from the models while nothing has been released.

Usage: .venv/bin/python scripts/regen_initial_migration.py
Once a release exists, add new revisions with alembic autogenerate instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from storage.migrate import MIGRATIONS, alembic_config

VERSIONS = MIGRATIONS / "versions"


def main() -> None:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'empty.db'}")
        with engine.begin() as connection:
            config = alembic_config(connection)
            command.revision(config, message="initial", autogenerate=True, rev_id="0001")
        engine.dispose()
    for new in VERSIONS.glob("0001_*.py"):
        text = new.read_text()
        text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
        new.write_text(text)
        print(f"wrote {new}")


if __name__ == "__main__":
    main()
