"""EpochSampler's class-balance modes: today's order unchanged by default, batch-balanced
composition, negative downsampling, determinism and DDP shards."""

from __future__ import annotations

import numpy as np
import pytest

from rsna_pkg.data.dataset import EpochSampler
from rsna_pkg.data.sampling import balanced_batches
from rsna_pkg.errors import InputError

LABELS = np.array([0] * 40 + [1] * 7 + [0] * 60)  # 7 positives among 100 negatives
POS = set(np.flatnonzero(LABELS).tolist())


def reference_rows(labels, oversample, pos_fraction, seed, epoch, rank, world):
    """EpochSampler.epoch_rows (training) as written before --neg-fraction and
    --balance batch (commit c1e42c5): the default order must never change."""
    rows = np.arange(len(labels))
    rng = np.random.default_rng([seed, epoch])
    if oversample:
        pos = int((labels > 0).sum())
        want = pos_fraction * (len(labels) - pos) / (1 - pos_fraction)
        copies = max(0, round(want / pos) - 1) if pos and 0 < pos_fraction < 1 else 0
        rows = np.concatenate([rows, *[np.flatnonzero(labels > 0)] * copies])
    rows = rng.permutation(rows)
    usable = len(rows) - len(rows) % world
    return rows[:usable][rank::world]


@pytest.mark.parametrize(
    ("oversample", "pos_fraction", "seed", "epoch", "rank", "world"),
    [(True, 0.25, 0, 0, 0, 1), (True, 0.5, 3, 2, 1, 2), (False, 0.25, 1, 1, 0, 1),
     (False, 0.25, 7, 4, 2, 3), (True, 0.0, 2, 0, 0, 1)],
)  # fmt: skip
def test_default_order_is_unchanged(oversample, pos_fraction, seed, epoch, rank, world) -> None:
    s = EpochSampler(LABELS, train=True, oversample=oversample, pos_fraction=pos_fraction,
                     seed=seed, rank=rank, world_size=world)  # fmt: skip
    s.set_epoch(epoch)
    expected = reference_rows(LABELS, oversample, pos_fraction, seed, epoch, rank, world)
    np.testing.assert_array_equal(s.epoch_rows(), expected)


def _batches(rows: np.ndarray, size: int) -> np.ndarray:
    assert len(rows) % size == 0
    return rows.reshape(-1, size)


def test_batch_mode_composition_is_exact_and_negatives_unrepeated() -> None:
    s = EpochSampler(LABELS, train=True, pos_per_batch=2, batch_size=8, seed=1)
    batches = _batches(s.epoch_rows(), 8)
    assert len(batches) == 100 // 6  # every negative drawn at most once: 16 batches of 6
    assert ((LABELS[batches] > 0).sum(axis=1) == 2).all()
    neg = batches[LABELS[batches] == 0]
    assert len(neg) == len(set(neg.tolist())) == 96
    pos = batches[LABELS[batches] > 0].tolist()
    counts = [pos.count(p) for p in POS]
    # 32 positive slots over 7 positives, cycled through whole permutations: 4 or 5 each
    assert sum(counts) == 32 and min(counts) == 4 and max(counts) == 5
    assert len(set(pos[:6])) == 6  # the first three batches: six different positives
    # the positives are not always at the same places in a batch
    assert len({tuple(np.flatnonzero(LABELS[b] > 0)) for b in batches}) > 1


def test_neg_fraction_keeps_a_fresh_share_each_epoch() -> None:
    s = EpochSampler(LABELS, train=True, neg_fraction=0.3, seed=5)
    kept = []
    for epoch in range(3):
        s.set_epoch(epoch)
        rows = s.epoch_rows()
        assert sorted(set(rows.tolist()) & POS) == sorted(POS)  # every positive, once
        assert len(rows) == 7 + 30 and len(set(rows.tolist())) == len(rows)
        kept.append(frozenset(rows.tolist()) - POS)
    assert len(set(kept)) == 3  # a different subset of negatives each epoch
    # with oversampling, the copies aim at pos_fraction of the kept images
    o = EpochSampler(LABELS, train=True, oversample=True, pos_fraction=0.25, neg_fraction=0.3)
    rows = o.epoch_rows()
    assert (LABELS[rows] == 0).sum() == 30 and (LABELS[rows] > 0).sum() == 7 * 1
    o = EpochSampler(LABELS, train=True, oversample=True, pos_fraction=0.5, neg_fraction=0.3)
    assert (LABELS[o.epoch_rows()] > 0).sum() == 7 * 4  # round(30 / 7) copies in all
    # and in batch mode: 30 negatives make 5 batches of 6
    b = EpochSampler(LABELS, train=True, neg_fraction=0.3, pos_per_batch=2, batch_size=8)
    batches = _batches(b.epoch_rows(), 8)
    assert len(batches) == 5 and ((LABELS[batches] > 0).sum(axis=1) == 2).all()


@pytest.mark.parametrize("kw", [{"neg_fraction": 0.5}, {"pos_per_batch": 1, "batch_size": 4},
                                {"oversample": True, "neg_fraction": 0.4}])  # fmt: skip
def test_same_seed_and_epoch_same_order(kw) -> None:
    def rows(seed: int, epoch: int) -> np.ndarray:
        s = EpochSampler(LABELS, train=True, seed=seed, **kw)
        s.set_epoch(epoch)
        return s.epoch_rows()

    np.testing.assert_array_equal(rows(2, 1), rows(2, 1))
    assert not np.array_equal(rows(2, 1), rows(2, 2))
    assert not np.array_equal(rows(2, 1), rows(3, 1))
    s = EpochSampler(LABELS, train=True, seed=2, **kw)
    s.set_epoch(1)
    assert list(s) == (len(LABELS) + rows(2, 1)).tolist()  # keys carry the epoch


@pytest.mark.parametrize("world", [2, 3])
def test_batch_mode_ddp_shards_are_whole_batches_of_one_epoch(world) -> None:
    kw = {"pos_per_batch": 1, "batch_size": 4, "neg_fraction": 0.9, "seed": 4}
    single = _batches(EpochSampler(LABELS, train=True, **kw).epoch_rows(), 4)
    shards = [
        _batches(EpochSampler(LABELS, train=True, rank=r, world_size=world, **kw).epoch_rows(), 4)
        for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1  # every rank runs the same number of steps
    usable = len(single) - len(single) % world
    for r, shard in enumerate(shards):
        np.testing.assert_array_equal(shard, single[:usable][r::world])
        assert ((LABELS[shard] > 0).sum(axis=1) == 1).all()
    negs = [set(s[LABELS[s] == 0].tolist()) for s in shards]
    assert all(not a & b for i, a in enumerate(negs) for b in negs[i + 1 :])


def test_neg_fraction_ddp_shards_equal_and_disjoint() -> None:
    shards = [EpochSampler(LABELS, train=True, neg_fraction=0.5, seed=1, rank=r, world_size=2)
              for r in range(2)]  # fmt: skip
    a, b = (s.epoch_rows() for s in shards)
    assert len(a) == len(b) == (7 + 50) // 2 and not set(a.tolist()) & set(b.tolist())


def test_balanced_batches_refuses_impossible_batches() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="no positive"):
        balanced_batches(np.zeros(0, int), np.arange(10), 4, 1, rng)
    with pytest.raises(InputError, match="cannot hold"):
        balanced_batches(np.arange(3), np.arange(3, 10), 4, 4, rng)
    # fewer negatives than one batch needs: an empty epoch, which the loop reports
    assert balanced_batches(np.arange(3), np.arange(3, 5), 4, 1, rng).shape == (0, 4)
