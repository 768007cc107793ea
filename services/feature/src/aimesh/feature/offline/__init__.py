"""The offline part: the lake (``lake``: records streamed from Parquet, per-entity timelines) and the
backfill that initialises a view's online state from it."""
