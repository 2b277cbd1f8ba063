"""Kaggle packaging: metadata rendered from kaggle.toml and checked with the kaggle CLI's own
validation, the offline wheel dataset, push, and the local replay of the four kernels."""
