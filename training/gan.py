"""What both stages share: optimisers with the lazy-R1 correction, the gradient step (rank
averaging, accumulation scaling, sanitising), the G_ema update, autocast, and state hooks."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import networks
from torch_utils import distributed
from training.config import TrainConfig

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# A step's statistics: 0-dim tensors still on the device (read once per tick, never inside a
# step: docs/training.md#no-waiting-inside-a-step) or plain numbers.
Stats = dict[str, torch.Tensor | float]


def in_sync(device: torch.device, *nets: nn.Module) -> tuple[nn.Module, ...]:
    """The stage's freshly built networks on `device`, with every process holding rank 0's
    weights (docs/training.md#initialisation-and-seeds)."""
    for net in nets:
        distributed.broadcast_module(net.to(device))
    return nets


def d_stats(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """(fake score, real score, logistic D loss) of one chunk, detached."""
    loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    return torch.stack([fake_logits.mean(), real_logits.mean(), loss]).detach()


class GAN:
    """Subclasses implement `train_step`, `sample_inputs` and `sample`."""

    def __init__(
        self,
        cfg: TrainConfig,
        G: nn.Module,
        D: nn.Module,
        device: torch.device,
        gen: torch.Generator,
    ):
        self.cfg, self.G, self.D, self.device, self.gen = cfg, G, D, device, gen
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        self.opt_G = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
        # Lazy regularisation: D's rate and beta2 are corrected by k/(k+1).
        self.opt_D = torch.optim.Adam(
            D.parameters(), lr=cfg.d_lr_corrected, betas=(cfg.beta1, cfg.d_beta2_corrected)
        )
        self.batch_per_rank = cfg.batch // distributed.world_size()
        self.chunk = self.batch_per_rank // cfg.grad_accum
        # What the G and D steps call: the networks, or their compiled versions.
        self.G_forward: Callable = self.G_target()
        self.D_forward: Callable = D

    def G_target(self) -> Callable:
        """The generator callable the G and D steps use (and `compile_networks` compiles)."""
        return self.G

    def compile_networks(self, backend: str = "inductor") -> None:
        """Run the G and D steps' forward passes (and so their backward passes) under
        `torch.compile` (docs/training.md#compiling). R1 keeps the eager D: its penalty needs a
        double backward, which compiled graphs do not support. Parameters, buffers and states
        stay those of `G` and `D`. `backend`: torch.compile's (tests use "aot_eager": the same
        tracing, functionalisation and autograd, without generating kernels)."""
        self.G_forward = torch.compile(self.G_target(), backend=backend)
        self.D_forward = torch.compile(self.D, backend=backend)

    @property
    def precision(self) -> str:
        """The step's precision, "auto" resolved for this device (`TrainConfig.precision_on`)."""
        return self.cfg.precision_on(self.device.type)

    def autocast(self):
        """Autocast for "bfloat16"/"float16"; none for "float32" and "mixed" (whose networks
        choose each layer's dtype themselves)."""
        dtype = AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else nullcontext()

    def optimizer_step(self, opt: torch.optim.Optimizer, params, scale: float) -> torch.Tensor:
        """Average over ranks, scale, sanitise, step; returns the non-finite count (a 0-dim
        tensor on the device)."""
        bad = distributed.sync_gradients(params, scale)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return bad

    def finish_D(self, stats: list[torch.Tensor]) -> Stats:
        """D's optimizer step after the chunks' backward passes; the chunks' `d_stats` rows
        averaged into the tick statistics."""
        bad = self.optimizer_step(self.opt_D, self.D.parameters(), 1 / self.cfg.grad_accum)
        fake_score, real_score, loss = torch.stack(stats).mean(0).unbind()
        return {
            "loss/D": loss,
            "score/fake": fake_score,
            "score/real": real_score,
            "grad/D_nonfinite": bad,
        }

    def r1_step(
        self, chunks: Iterable[tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]]
    ) -> Stats:
        """Lazy R1 (docs/training.md#r1-regularisation): for each chunk `(x, logits_of)`, penalty
        = sum over a clip of the squared gradient of D's logits w.r.t. `x`, weighted by gamma/2;
        then its own optimizer step with gain r1_interval."""
        self.D.requires_grad_(True)
        penalties = []
        for x, logits_of in chunks:
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(logits_of(x).sum(), x, create_graph=True)
            penalty = grad.float().square().sum(dim=(1, 2, 3, 4))
            (penalty * (self.cfg.gamma / 2)).mean().backward()
            penalties.append(penalty.mean().detach())
        scale = self.cfg.r1_interval / self.cfg.grad_accum
        bad = self.optimizer_step(self.opt_D, self.D.parameters(), scale)
        return {"loss/r1_penalty": torch.stack(penalties).mean(), "grad/r1_nonfinite": bad}

    @torch.no_grad()
    def update_ema(self, step: int) -> float:
        """G_ema <- lerp(G_ema, G, 1 - beta_t) over parameters and buffers
        (docs/training.md#generator-ema)."""
        beta = self.cfg.ema_beta_at(step)
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            if b.is_floating_point():
                b_ema.lerp_(b, 1 - beta)
        return beta

    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_G": self.opt_G, "opt_D": self.opt_D}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def progress(self) -> dict[str, float]:
        return {"progress/G_lrate": self.cfg.g_lr, "progress/D_lrate": self.cfg.d_lr_corrected}

    def snapshot(self) -> nn.Module:
        return self.G_ema

    def init_from(self, path: str | Path) -> list[str]:
        """Start from the networks in `path` (`lvg-train --init`, docs/fine-tuning.md): G from the
        file's G (else its G_ema), G_ema from its G_ema (else its G), D from its D if it has one
        (else D stays freshly initialised). Each network's config must equal this run's.
        Returns one line per network for the log."""
        ckpt = networks.open_checkpoint(path)
        sources = {
            "G": ckpt.find(self.G.kind, prefer=("G", "G_ema")),
            "G_ema": ckpt.find(self.G.kind, prefer=("G_ema", "G")),
            "D": ckpt.find(self.D.kind, prefer=("D",)),
        }
        if sources["G"] is None:
            held = ", ".join(f"{r} ({k})" for r, k in ckpt.kinds.items())
            raise ValueError(f"`init` {path} holds {held}, but this stage trains a {self.G.kind}")
        loaded, lines = {}, []
        for name, role in sources.items():
            target = self.modules()[name]
            if role is None:
                lines.append(f"{name}: freshly initialised ({path} has no {target.kind})")
                continue
            if role not in loaded:
                loaded[role] = ckpt.network(role)
            _check_same_config(loaded[role], target, f"`init` {path} ({role})")
            with torch.no_grad():
                target.load_state_dict(loaded[role].state_dict())
            lines.append(f"{name}: from {ckpt.format} {path} ({role})")
        for key, value in ckpt.info.items():
            if key == "augment_p":
                lines.append(f"the file's ADA probability was {value:.4g}; ADA adapts anew from 0")
        return lines


def _check_same_config(loaded: nn.Module, target: nn.Module, what: str) -> None:
    """ValueError naming the first config field in which `loaded` differs from `target`."""
    for field in dataclasses.fields(target.cfg):
        ours, theirs = getattr(target.cfg, field.name), getattr(loaded.cfg, field.name)
        if ours != theirs:
            raise ValueError(
                f"{what}: its {loaded.kind} has {field.name}={theirs!r}, but this run builds "
                f"{field.name}={ours!r}; choose the preset the model was trained with "
                "(e.g. `preset` paper for the original models)"
            )
