"""aimesh ingest: validates upstream event streams, dead-letters bad records, writes canonical records and the lake."""
