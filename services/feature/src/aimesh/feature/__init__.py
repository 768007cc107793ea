"""aimesh feature: feature store: definitions, streaming window aggregations, online store, point-in-time retrieval.

Parts (sub-packages), each depending only on the ones above it and on the shared modules:

- ``definitions``: what a use case applies (entities, views, feature services; the expression language),
  the versioned registry in SQL and how replicas follow it;
- ``online``: the online store (one protocol, one factory; SQL or Redis) and the consumer that keeps it
  current;
- ``offline``: the lake (Parquet) as histories, and the backfill of a view from it;
- ``serving``: the one computation of values over a history, online and point-in-time retrieval, the
  gRPC adapter and the online-versus-offline check.

Shared: ``history`` (entity histories), ``records`` (source records and their projection onto views),
``schema`` (SQL tables, migrations), ``metrics``. Wiring: ``service`` (``FeatureStore``), ``app`` (the
process), ``settings``, ``operations`` (what the ``aimesh feature`` commands call).
"""
