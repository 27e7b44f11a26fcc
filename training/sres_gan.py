"""One training step of the super-resolution stage (docs/training.md#sr-step).

The generator learns from REAL low-resolution clips (T + 8 frames: T output frames and 4
context frames on each side), in-augmented to imitate the low-resolution generator's
imperfections. The discriminator sees the x4-upsampled low-resolution clip next to the
high-resolution one, both augmented jointly by ADA, with the low-resolution half kept only
10 % of the time; R1 is taken with respect to the high-resolution input only.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from datasets.shards import DamagedClipError
from training.ada import BGC, IN_AUGMENT, AdaController, AugmentPipe
from training.gan import GAN, Stats, d_stats, in_sync


class SuperResGAN(GAN):
    def __init__(self, cfg, G, D, device, gen, dataset):
        super().__init__(cfg, G, D, device, gen)
        self.dataset = dataset  # a VideoDatasetTwoRes; `.lres` gives the sample videos' real clips
        self.context = G.context  # low-res frames on each side of an output frame
        self.in_augment = AugmentPipe(IN_AUGMENT, p=cfg.in_augment_p)
        self.ada = AdaController(
            AugmentPipe(BGC, p=0.0), cfg.ada_target, cfg.ada_interval, cfg.ada_speed, cfg.ada_max_p
        )

    def centre(self, lr: torch.Tensor) -> torch.Tensor:
        """The T low-resolution frames aligned with the T output frames."""
        return lr[:, :, self.context : lr.shape[2] - self.context]

    def generate(self, lr_aug: torch.Tensor, magnitude_ema_beta: float = 1.0) -> torch.Tensor:
        z = torch.randn(lr_aug.shape[0], self.G.z_dim, generator=self.gen).to(self.device)
        return self.G_forward(
            lr_aug, z=z, magnitude_ema_beta=magnitude_ema_beta, precision=self.precision
        )

    def run_D(self, lr: torch.Tensor, hr: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """D on (upsampled LR, HR) after joint ADA and LR-conditioning dropout
        (docs/training.md#sr-discriminator-inputs)."""
        lr_up = self.D.upsample_lr(lr.float())
        both = self.ada.pipe(torch.cat([lr_up, hr.float()], dim=2), self.gen)
        lr_up, hr = both.split([lr_up.shape[2], hr.shape[2]], dim=2)
        keep = (torch.rand(lr.shape[0], generator=self.gen) < self.cfg.lr_cond_prob).to(lr_up)
        D = self.D if eager else self.D_forward
        return D(lr_up * keep.view(-1, 1, 1, 1, 1), hr, precision=self.precision).float()

    def update_G(self, lr: torch.Tensor) -> Stats:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        losses = []
        for lr_i in lr.split(self.chunk):
            lr_aug = self.in_augment(lr_i, self.gen)
            logits = self.run_D(self.centre(lr_aug), self.generate(lr_aug))
            loss = F.softplus(-logits).mean()
            loss.backward()
            losses.append(loss.detach())
        bad = self.optimizer_step(self.opt_G, self.G.parameters(), 1 / self.cfg.grad_accum)
        return {"loss/G": torch.stack(losses).mean(), "grad/G_nonfinite": bad}

    def update_D(self, lr: torch.Tensor, hr: torch.Tensor) -> Stats:
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        # The whole batch's fakes at once, before the chunk loop (as the low-res stage does): the
        # generator's magnitude EMAs and w_avg move here only, once per step, from the statistics
        # of the full batch, whatever grad_accum is.
        lr_fake = self.in_augment(lr, self.gen)
        with torch.no_grad():
            fake = self.generate(lr_fake, self.cfg.magnitude_ema_beta)
        # The same LR clips, in-augmented independently for the real path.
        lr_real = self.in_augment(lr, self.gen)
        stats = []
        for fake_i, lr_fake_i, lr_real_i, hr_i in zip(
            *(x.split(self.chunk) for x in (fake, lr_fake, lr_real, hr))
        ):
            fake_logits = self.run_D(self.centre(lr_fake_i), fake_i)
            F.softplus(fake_logits).mean().backward()
            real_logits = self.run_D(self.centre(lr_real_i), self.centre(hr_i))
            F.softplus(-real_logits).mean().backward()
            self.ada.accumulate(real_logits)
            stats.append(d_stats(fake_logits, real_logits))
        return self.finish_D(stats)

    def update_r1(self, lr: torch.Tensor, hr: torch.Tensor) -> Stats:
        """R1 with respect to the high-resolution clip only, before ADA."""

        def chunks():
            for lr_i, hr_i in zip(lr.split(self.chunk), hr.split(self.chunk)):
                lr_aug = self.centre(self.in_augment(lr_i, self.gen))
                yield self.centre(hr_i), lambda x, lr_aug=lr_aug: self.run_D(lr_aug, x, eager=True)

        return self.r1_step(chunks())

    def train_step(self, step: int, data) -> Stats:
        lr, _ = next(data)
        stats = self.update_G(lr)
        stats.update(self.update_D(*next(data)))
        if step % self.cfg.r1_interval == 0:
            stats.update(self.update_r1(*next(data)))
        signs = self.ada.update(step)  # after the D steps of steps 0, k, 2k, ...
        if signs is not None:
            stats["progress/ada_sign"] = signs
        stats["progress/G_ema_beta"] = self.update_ema(step)
        return stats

    def progress(self) -> dict[str, float]:
        return {**super().progress(), "progress/augment_p": self.ada.pipe.p}

    def extra_state(self) -> dict:
        return {"ada": self.ada.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        if "ada" in state:
            self.ada.load_state_dict(state["ada"])

    def sample_inputs(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed real LR clip (sample_frames + context) and fixed latents."""
        frames = self.cfg.sample_frames + 2 * self.context
        lres, clips = self.dataset.lres, []
        for i in range(len(lres)):  # the first readable clips (docs/datasets.md#damaged-data)
            if len(clips) == self.cfg.sample_videos:
                break
            try:
                clips.append(lres.read_frames(i, 0, min(frames, lres.num_frames[i])))
            except DamagedClipError as e:
                self.dataset.damage.add([e.damage])  # warned and counted; stops past the limit
        length = min(c.shape[1] for c in clips)
        lr = torch.stack([c[:, :length] for c in clips])
        return lr, torch.randn(lr.shape[0], self.G.z_dim, generator=gen)

    @torch.no_grad()
    def sample(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        lr, z = inputs
        segments = self.G_ema.segments(
            lr, z=z.to(self.device), segment_length=8, precision=self.precision
        )
        return torch.cat([s.cpu() for s in segments], dim=2)


def sres_networks(cfg, preset) -> tuple[nn.Module, nn.Module]:
    """The stage's G and D from the network `preset`: D sized for G's frame sizes and the run's
    clip length `cfg.seq_length`."""
    from networks.sres_discriminator import SuperResDiscriminator
    from networks.sres_generator import SuperResGenerator

    g_cfg = preset.sres_generator
    d_cfg = dataclasses.replace(
        preset.sres_discriminator,
        seq_length=cfg.seq_length,
        lr_height=g_cfg.lr_height,
        lr_width=g_cfg.lr_width,
        hr_height=g_cfg.hr_height,
        hr_width=g_cfg.hr_width,
    )
    return SuperResGenerator(g_cfg), SuperResDiscriminator(d_cfg)


def build_sres_stage(cfg, preset, device: torch.device, gen: torch.Generator):
    """The super-resolution stage's GAN and its paired dataset (`training.loop.build_stage`)."""
    from datasets.shards import VideoDatasetTwoRes

    G, D = in_sync(device, *sres_networks(cfg, preset))
    dataset = VideoDatasetTwoRes(
        cfg.data,
        G.lr_size,
        G.hr_size,
        cfg.seq_length + 2 * G.context,
        x_flip=cfg.x_flip,
        seed=cfg.seed,
    )
    return SuperResGAN(cfg, G, D, device, gen, dataset), dataset
