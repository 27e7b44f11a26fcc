"""Named network configurations. The command line picks a preset and only overrides fields.

* `paper`: the published configuration (docs/networks.md): 83.2M-parameter low-res generator,
  27.2M-parameter super-resolution generator (36x64 -> 144x256).
* `small`: a quarter of the width, for a single consumer GPU or patient CPU training.
* `tiny`: a few hundred thousand parameters for CPU smoke tests and the test suite (the
  super-resolution stage at 18x32 -> 72x128).
* `demo`: the models shipped in `generation/demo/`: the tiny low-res generator, and a narrow
  super-resolution network at the paper's 36x64 -> 144x256 with 10 synthesis layers, fast
  enough to write a 20-second video on a laptop CPU in about a minute.
"""

from __future__ import annotations

from dataclasses import dataclass

from networks.lres_discriminator import LowResDiscriminatorConfig
from networks.lres_generator import LowResGeneratorConfig
from networks.noise import NoiseBankConfig
from networks.sres_discriminator import SuperResDiscriminatorConfig
from networks.sres_generator import SuperResGeneratorConfig


@dataclass(frozen=True)
class Preset:
    lres_generator: LowResGeneratorConfig
    lres_discriminator: LowResDiscriminatorConfig
    sres_generator: SuperResGeneratorConfig = SuperResGeneratorConfig()
    sres_discriminator: SuperResDiscriminatorConfig = SuperResDiscriminatorConfig()


PRESETS: dict[str, Preset] = {
    "paper": Preset(LowResGeneratorConfig(), LowResDiscriminatorConfig()),
    "small": Preset(
        LowResGeneratorConfig(
            input_channels=128,
            channels=(128, 128, 128, 128, 64, 64, 64, 64, 32, 32),
            latent_dim=256,
            noise=NoiseBankConfig(num_filters=32),
        ),
        LowResDiscriminatorConfig(channels=(16, 32, 64, 128, 128), head_channels=256),
        SuperResGeneratorConfig(channel_base=8192, channel_max=128),
        SuperResDiscriminatorConfig(channel_base=4096, channel_max=128),
    ),
    "tiny": Preset(
        LowResGeneratorConfig(
            input_channels=32,
            channels=(32, 32, 32, 32, 16, 16, 16, 16, 8, 8),
            latent_dim=64,
            noise=NoiseBankConfig(num_filters=8),
        ),
        LowResDiscriminatorConfig(seq_length=32, channels=(8, 16, 16, 32, 32), head_channels=64),
        SuperResGeneratorConfig(
            hr_height=72,
            hr_width=128,
            lr_height=18,
            lr_width=32,
            z_dim=32,
            w_dim=32,
            channel_base=1024,
            channel_max=32,
        ),
        SuperResDiscriminatorConfig(
            hr_height=72, hr_width=128, lr_height=18, lr_width=32, channel_base=512, channel_max=32
        ),
    ),
}
PRESETS["demo"] = Preset(
    PRESETS["tiny"].lres_generator,
    PRESETS["tiny"].lres_discriminator,
    SuperResGeneratorConfig(z_dim=32, w_dim=32, channel_base=2048, channel_max=32, num_layers=10),
    SuperResDiscriminatorConfig(channel_base=1024, channel_max=32),
)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
