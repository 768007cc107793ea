"""``python -m bench.recommend``: inference's Recommend against a direct Triton call of the same exported model."""
