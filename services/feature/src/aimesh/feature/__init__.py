"""aimesh feature: feature store: definitions, streaming window aggregations, online store, point-in-time retrieval."""
