"""aimesh inference: the scoring API: routing between model versions, online features, Triton calls, prediction log."""
