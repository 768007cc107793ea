"""aimesh example scenarios and their data generators."""
