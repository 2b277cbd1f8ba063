"""The training step under DDP, run by tests/test_train_ddp.py (not a test module).

``python tests/ddp_step.py OUT ACCUMULATE`` (or ``train`` in a test's own process) trains
a tiny model with the real ``Trainer.train_epoch`` for one epoch of 48 images in optimizer
steps of 16 (micro-batches of 16 / ACCUMULATE images over all ranks) and saves this rank's
weights, EMA weights, the epoch's mean training loss (over all ranks) and its number of
optimizer steps to ``OUT/rank<r>.pt``. Under ``torchrun --nproc_per_node W`` rank r takes its share of each
micro-batch; alone (no torchrun) the process takes all of it. Every run sees the same images
in the same optimizer steps, so synchronised, averaged gradients give the same weights on
every rank, and the weights of one process, with or without accumulation.

The model has no BatchNorm and no dropout (per-rank batch statistics and per-rank random
masks differ from a single process's by design) but does have a metadata branch and an
auxiliary head whose labels are all known, so every path of the step runs and each rank's
loss is a plain mean over its images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from rsna_pkg.models.config import ModelConfig
from rsna_pkg.preprocess import PreprocessConfig
from rsna_pkg.train import ddp
from rsna_pkg.train.config import TrainConfig
from rsna_pkg.train.trainer import Trainer

IMAGES = 48
STEP_BATCH = 16  # images per optimizer step over all ranks: 3 optimizer steps
SIDE = 8
META = 3


class Tiny(nn.Module):
    """[B, 1, 8, 8] images + [B, 3] metadata -> logits [B] (and {"biopsy": [B, 1]})."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.meta = nn.Linear(META, 4)
        self.out = nn.Linear(8, 1)
        self.biopsy = nn.Linear(8, 1)

    def forward(
        self, images: torch.Tensor, meta: torch.Tensor | None = None, aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert meta is not None
        feats = torch.cat([torch.tanh(self.conv(images)).mean(dim=(2, 3)), self.meta(meta)], 1)
        logits = self.out(feats).squeeze(1)
        return (logits, {"biopsy": self.biopsy(feats)}) if aux else logits


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, metadata, labels and aux labels (biopsy = label) of every step, in order."""
    gen = torch.Generator().manual_seed(7)
    n = IMAGES
    labels = (torch.rand(n, generator=gen) < 0.4).float()
    images = torch.randn(n, 1, SIDE, SIDE, generator=gen) + 2 * labels[:, None, None, None]
    meta = torch.randn(n, META, generator=gen)
    return images, meta, labels, labels[:, None].clone()


def config(micro_batch: int, accumulate: int, heads: bool = True) -> TrainConfig:
    model = ModelConfig(preprocess=PreprocessConfig(height=32, width=32), dropout=0.0,
                        aux_heads=(("biopsy", 1),) if heads else ())  # fmt: skip
    return TrainConfig(model=model, epochs=1, batch_size=micro_batch, lr=0.05,
                       optimizer="sgd", warmup_epochs=0.0, accumulate=accumulate, ema=0.5,
                       aux={"biopsy": 0.5} if heads else {}, amp=False, channels_last=True,
                       device="cpu")  # fmt: skip


def train(ctx: ddp.DistContext, out: Path, accumulate: int, count: int = IMAGES,
          heads: bool = True) -> None:  # fmt: skip
    """Train this rank's share of the first ``count`` images (a last optimizer step of fewer
    micro-steps when ``count`` is no multiple of 16), with the biopsy head or (``heads``
    False) without auxiliary heads, and save its weights to ``OUT/rank<r>.pt``."""
    images, meta, labels, aux = data()
    micro = STEP_BATCH // accumulate  # images of one micro-step over all ranks
    per_rank = micro // ctx.world_size
    assert per_rank * ctx.world_size * accumulate == STEP_BATCH, (accumulate, ctx.world_size)
    assert count % micro == 0 and count <= IMAGES, (count, micro)
    batches = []
    for step in range(count // micro):
        start = step * micro + ctx.rank * per_rank
        rows = torch.arange(start, start + per_rank)
        # as the DataLoader collates MammoDataset's items: labels float64, rows int64
        batches.append((images[rows], meta[rows], labels[rows].double(), rows))
    torch.manual_seed(ctx.rank)  # ranks start apart: DDP must broadcast rank 0's weights
    model = Tiny()
    trainer = Trainer(model, config(per_rank, accumulate, heads), ctx,
                      steps_per_epoch=len(batches), pos_weight=1.5,
                      aux_targets=aux if heads else None)  # fmt: skip
    loss = trainer.train_epoch(batches, show=False)  # type: ignore[arg-type]
    state = {"model": model.state_dict(), "ema": trainer.eval_model().state_dict(),
             "loss": torch.tensor(loss, dtype=torch.float64),
             "optimizer_steps": torch.tensor(trainer.sched.last_epoch)}  # fmt: skip
    torch.save(state, out / f"rank{ctx.rank}.pt")


def main(out: Path, accumulate: int) -> None:
    ctx = ddp.setup("cpu")
    torch.set_num_threads(1)
    train(ctx, out, accumulate)
    ddp.cleanup(ctx)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
