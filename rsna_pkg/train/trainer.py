"""Optimisation state of a run: optimiser (AdamW/SGD), warmup + cosine schedule,
AMP (CUDA only), gradient accumulation, optional EMA weights, DDP wrapping, and
their (de)serialisation for --resume."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from rsna_pkg.data.aux_targets import aux_labels
from rsna_pkg.train.aux_loss import aux_loss
from rsna_pkg.train.config import TrainConfig
from rsna_pkg.train.ddp import DistContext

if TYPE_CHECKING:
    from rsna_pkg.train.prepare import Prepared


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.01) -> float:
    """LR multiplier: linear warmup to 1 over ``warmup`` steps, then cosine to ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        ctx: DistContext,
        steps_per_epoch: int,
        pos_weight: float | None,
        aux_targets: torch.Tensor | None = None,
    ) -> None:
        """``aux_targets``: [N_train, heads] labels by dataset row (``aux_labels``), for
        the model's auxiliary heads; None without heads."""
        self.cfg, self.ctx, self.unwrapped = cfg, ctx, model
        self.aux_names = [name for name, _ in cfg.model.aux_heads]
        if self.aux_names and aux_targets is None:
            raise ValueError("a model with auxiliary heads needs their aux_targets")
        self.aux_targets = aux_targets
        self.device = ctx.device
        self.channels_last = cfg.channels_last
        self.model: nn.Module = model
        if ctx.distributed:
            ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                weight_decay=cfg.weight_decay,
            )  # fmt: skip
        else:
            self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        optim_steps = math.ceil(steps_per_epoch / cfg.accumulate)
        warmup = round(cfg.warmup_epochs * optim_steps)
        total = cfg.epochs * optim_steps
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: warmup_cosine(s, warmup, total)
        )
        cuda = self.device.type == "cuda"
        self.amp = cfg.amp and cuda
        bf16 = cuda and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and not bf16)
        self.ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            if cfg.ema > 0
            else None
        )
        pw = None if pos_weight is None else torch.tensor(pos_weight, device=self.device)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=pw)

    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def eval_model(self) -> nn.Module:
        """The weights validation and model.pt use: EMA when enabled."""
        return self.ema.module if self.ema is not None else self.unwrapped

    def train_epoch(self, loader: DataLoader, show: bool) -> float:
        """One pass over the loader; returns the mean training loss over all ranks."""
        from tqdm import tqdm

        self.model.train()
        acc = self.cfg.accumulate
        total, count = 0.0, 0
        self.opt.zero_grad(set_to_none=True)
        bar = tqdm(loader, disable=not show, leave=False, desc="train", dynamic_ncols=True)
        for step, (images, meta, labels, rows) in enumerate(bar):
            x = images.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            m = meta.to(self.device, non_blocking=True) if meta.numel() else None
            y = labels.to(self.device, dtype=torch.float32)
            sync = (step + 1) % acc == 0 or step + 1 == len(loader)
            no_sync = self.ctx.distributed and not sync
            with self.model.no_sync() if no_sync else nullcontext():  # type: ignore[operator]
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                    out = self.model(x, m, aux=True) if self.aux_names else (self.model(x, m), {})
                logits, aux_logits = out
                loss = self.criterion(logits.float(), y)
                if self.aux_names:
                    loss = loss + self._aux_loss(aux_logits, rows)
                self.scaler.scale(loss / acc).backward()
            if sync:
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.unwrapped)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}")
            total += loss.item() * len(y)
            count += len(y)
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        sums = _gather_sum(self.ctx, total, count)
        return sums[0] / max(sums[1], 1)

    def _aux_loss(self, logits: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        assert self.aux_targets is not None
        targets = self.aux_targets[rows].to(self.device, non_blocking=True)
        return aux_loss(logits, targets, self.aux_names, self.cfg.aux)

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict()}
        state["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unwrapped.load_state_dict(state["state_dict"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])


def _gather_sum(ctx: DistContext, total: float, count: int) -> tuple[float, int]:
    if not ctx.distributed:
        return total, count
    t = torch.tensor([total, float(count)], dtype=torch.float64, device=ctx.device)
    torch.distributed.all_reduce(t)
    return float(t[0]), int(t[1])


def make_trainer(
    model: nn.Module, cfg: TrainConfig, ctx: DistContext, steps_per_epoch: int, prep: Prepared
) -> Trainer:
    pos_weight = None
    if cfg.balance == "pos_weight":
        pos = float(prep.train["cancer"].sum())
        pos_weight = (len(prep.train) - pos) / max(pos, 1.0)
    names = [name for name, _ in cfg.model.aux_heads]
    aux = torch.from_numpy(aux_labels(prep.train, names)) if names else None
    return Trainer(model, cfg, ctx, steps_per_epoch, pos_weight, aux)
