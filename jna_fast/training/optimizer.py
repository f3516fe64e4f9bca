"""The optimiser and its schedule: parameter groups, the learning rate at each step, the groups' warm-ups
(docs/design.md §2.5)."""

from __future__ import annotations

import math

import torch

from ..config import Config


def learning_rate(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to 0 over the remaining steps."""
    total = cfg.optim.epochs * steps_per_epoch
    warmup = max(1, int(cfg.optim.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return cfg.optim.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.optim.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def parameter_groups(model, cfg: Config) -> list[dict]:
    """Weight decay on conv and linear weights only: decaying BN, biases and the cross-stitch alphas would pull
    them to 0 (alpha starts at [[s, 1-s], [1-s, s]] on purpose). The parameters a model part schedules on its own
    (``model.scheduled_parameters()``: the attention vectors, the cross-stitch weights) have groups of their own,
    named by the part, undecayed, at the part's factor of the rate (docs/design.md §2.5)."""
    scheduled = model.scheduled_parameters()
    own_group = {id(p) for group in scheduled for p in group.params}
    decay, no_decay = [], []
    for parameter in model.parameters():
        if id(parameter) in own_group or not parameter.requires_grad:
            continue
        (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay, "lr_scale": 1.0, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0, "name": "no_decay"},
    ]
    groups += [{"params": list(group.params), "weight_decay": 0.0, "lr_scale": group.lr_scale, "name": group.name}
               for group in scheduled]
    return groups


def warmup_shares(model) -> dict[str, float]:
    """The share of all steps during which each scheduled group stays at its initial values, by group name."""
    return {group.name: group.warmup for group in model.scheduled_parameters()}


# Devices where torch has one fused kernel for the whole update of AdamW and SGD over every parameter: the
# per-tensor (foreach) form reads and writes each state tensor once per elementwise op (docs/design.md §2.5).
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def fused_update(device_types: set[str]) -> bool | None:
    """The ``fused`` argument of AdamW and SGD for parameters on ``device_types``: True where every one has the
    fused kernel, else None (torch's own choice; False would also turn off its default per-tensor form)."""
    return True if device_types and device_types <= set(FUSED_OPTIMIZER_DEVICES) else None


def make_optimizer(model, cfg: Config) -> torch.optim.Optimizer:
    """AdamW or SGD over :func:`parameter_groups`, with torch's fused update where the parameters' device has one."""
    groups = parameter_groups(model, cfg)
    fused = fused_update({p.device.type for group in groups for p in group["params"]})
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr, fused=fused)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum, fused=fused)


def set_learning_rates(optimizer, cfg: Config, step: int, steps_per_epoch: int,
                       warmups: dict[str, float] | None = None) -> None:
    """The rate of every group at ``step``: 0 during its warm-up share (``warmups``: :func:`warmup_shares`), else
    the schedule's times its factor."""
    rate = learning_rate(cfg, step, steps_per_epoch)
    warmups = warmups or {}
    for group in optimizer.param_groups:
        frozen = step < warmups.get(group["name"], 0.0) * cfg.optim.epochs * steps_per_epoch
        group["lr"] = 0.0 if frozen else rate * group["lr_scale"]
