"""Class-balance draws for one training epoch (EpochSampler calls them): which negatives
an epoch keeps, and batches with a fixed number of positives. Pure functions of the
row indices and a Generator, so an epoch is the same for a (seed, epoch) on any rank and
on ``--resume``."""

from __future__ import annotations

import numpy as np

from rsna_pkg.config_fields import FieldError
from rsna_pkg.errors import InputError


def negatives_kept(negatives: int, fraction: float) -> int:
    """How many of ``negatives`` an epoch keeps at ``fraction`` (at least one, if any)."""
    if fraction >= 1.0:
        return negatives
    return min(negatives, max(1, round(fraction * negatives)))


def keep_negatives(neg: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A fresh random subset of the negative rows ``neg`` (sorted); all of them at 1.0,
    with no draw from ``rng``."""
    if fraction >= 1.0:
        return neg
    return np.sort(rng.choice(neg, size=negatives_kept(len(neg), fraction), replace=False))


def positives_per_batch(pos_fraction: float, batch_size: int) -> int:
    """Positives in each batch of ``--balance batch``: ``round(pos_fraction * batch_size)``."""
    return round(pos_fraction * batch_size)


def balanced_batches(
    pos: np.ndarray, neg: np.ndarray, batch_size: int, n_pos: int, rng: np.random.Generator
) -> np.ndarray:
    """[n_batches, batch_size] rows, each batch ``n_pos`` positives and
    ``batch_size - n_pos`` negatives in random order.

    Negatives are drawn without replacement (one permutation; the remainder that fills no
    batch is left out), so they set the number of batches. Positives cycle through fresh
    permutations, so none repeats before every other positive has been drawn.
    """
    if not 0 < n_pos < batch_size:
        raise InputError(f"a batch of {batch_size} cannot hold {n_pos} positive(s) and a negative")
    if len(pos) == 0:
        raise FieldError("balance", "the training split has no positive image", value="batch")
    n_neg = batch_size - n_pos
    n_batches = len(neg) // n_neg
    negs = rng.permutation(neg)[: n_batches * n_neg].reshape(n_batches, n_neg)
    need = n_batches * n_pos
    passes = [rng.permutation(pos) for _ in range(-(-need // len(pos)))]
    poss = np.concatenate([np.zeros(0, dtype=neg.dtype), *passes])[:need]
    batches = np.concatenate([poss.reshape(n_batches, n_pos), negs], axis=1)
    return rng.permuted(batches, axis=1)
