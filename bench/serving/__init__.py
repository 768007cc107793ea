"""What the serving benchmarks (``bench.recommend``, ``bench.inference``) share: the feature-service stub,
the real inference process on free ports, the anchor clients, the timed cells and the report's common parts."""
