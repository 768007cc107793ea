"""aimesh training: PyTorch runs, a model registry with aliases, export to the Triton model repository."""
