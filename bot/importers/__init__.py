"""History importers: files and past periods fed through the one ingest path."""
