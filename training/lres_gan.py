"""One training step of the low-resolution stage (docs/training.md#low-res-step).

G step: generate T+32 frames, keep a random T-frame window per video (offset in [0, 32)),
        non-saturating loss through the augmented D.
D step: a real and a generated batch (the generator's magnitude EMAs update here only),
        logistic loss on both.
R1:     every 16 steps on a fresh real batch, its own optimizer step with gain 16.
EMA:    G_ema follows G over parameters and buffers with the ramped decay.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from networks.lres_generator import LowResGenerator, random_windows
from training.augment import augment_video
from training.gan import GAN, Stats, d_stats, in_sync


class LowResGAN(GAN):
    """The update rules of the low-resolution stage."""

    G: LowResGenerator

    # -- pieces ----------------------------------------------------------------------------------

    def G_target(self):
        return self.G.from_noise

    def generate(self, batch: int, magnitude_ema_beta: float = 1.0) -> torch.Tensor:
        """`batch` clips of seq_length frames, each a random window of a longer video whose
        offset lies in [0, time_margin) (the generator is equivariant only to 32-frame shifts):
        what `LowResGenerator.random_clips` does, noise and offsets drawn from the run's
        generator, with the synthesis through `G_forward`."""
        length = self.cfg.seq_length + self.cfg.time_margin
        noise = self.G.draw_noise(batch, length, self.gen)
        with self.autocast():
            video = self.G_forward(noise, length, magnitude_ema_beta)
        return random_windows(video, self.cfg.seq_length, self.gen)

    def run_D(self, video: torch.Tensor, eager: bool = False) -> torch.Tensor:
        video = augment_video(video, self.gen, self.cfg.diffaugment, self.cfg.time_stretch)
        with self.autocast():
            return (self.D if eager else self.D_forward)(video).float()

    # -- the updates -----------------------------------------------------------------------------

    def update_G(self) -> Stats:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        losses = []
        for _ in range(self.cfg.grad_accum):
            logits = self.run_D(self.generate(self.chunk))
            loss = F.softplus(-logits).mean()
            loss.backward()
            losses.append(loss.detach())
        bad = self.optimizer_step(self.opt_G, self.G.parameters(), 1 / self.cfg.grad_accum)
        return {"loss/G": torch.stack(losses).mean(), "grad/G_nonfinite": bad}

    def update_D(self, real: torch.Tensor) -> Stats:
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.generate(self.batch_per_rank, self.cfg.magnitude_ema_beta)
        stats = []
        for fake_i, real_i in zip(fake.split(self.chunk), real.split(self.chunk)):
            fake_logits = self.run_D(fake_i)
            F.softplus(fake_logits).mean().backward()
            real_logits = self.run_D(real_i)
            F.softplus(-real_logits).mean().backward()
            stats.append(d_stats(fake_logits, real_logits))
        return self.finish_D(stats)

    def update_r1(self, real: torch.Tensor) -> Stats:
        """Lazy R1 on a fresh real batch, through the same augmentation."""
        run_D = lambda x: self.run_D(x, eager=True)  # noqa: E731
        return self.r1_step((real_i, run_D) for real_i in real.split(self.chunk))

    def train_step(self, step: int, data) -> Stats:
        """One full iteration; `data` yields real batches (one for D, one more for R1)."""
        stats = self.update_G()
        stats.update(self.update_D(next(data)))
        if step % self.cfg.r1_interval == 0:
            stats.update(self.update_r1(next(data)))
        stats["progress/G_ema_beta"] = self.update_ema(step)
        return stats

    def sample_inputs(self, gen: torch.Generator) -> torch.Tensor:
        """Fixed noise for the run's sample videos (the same at every tick)."""
        return self.G.draw_noise(self.cfg.sample_videos, self.cfg.sample_frames, gen)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """G_ema videos `[n, 3, T, H, W]` from the fixed noise."""
        return self.G_ema.from_noise(noise.to(self.device), self.cfg.sample_frames).cpu()


def lres_networks(cfg, preset) -> tuple[LowResGenerator, nn.Module]:
    """The stage's G and D from the network `preset`: D sized for G's frames and the run's clip
    length `cfg.seq_length`."""
    from networks.lres_discriminator import LowResDiscriminator

    g_cfg = preset.lres_generator
    d_cfg = dataclasses.replace(
        preset.lres_discriminator,
        height=g_cfg.height,
        width=g_cfg.width,
        seq_length=cfg.seq_length,
    )
    return LowResGenerator(g_cfg), LowResDiscriminator(d_cfg)


def build_lres_stage(cfg, preset, device: torch.device, gen: torch.Generator):
    """The low-resolution stage's GAN and its dataset (`training.loop.build_stage`)."""
    from datasets.shards import VideoDataset

    G, D = in_sync(device, *lres_networks(cfg, preset))
    dataset = VideoDataset(cfg.data, G.size, cfg.seq_length, x_flip=cfg.x_flip, seed=cfg.seed)
    return LowResGAN(cfg, G, D, device, gen), dataset
