"""Named network configurations. The command line picks a preset and only overrides fields.

* `paper`: the published configuration (spec §2, §3): 83.2M-parameter generator.
* `small`: a quarter of the width, for a single consumer GPU or patient CPU training.
* `tiny`: a few hundred thousand parameters for CPU smoke tests and the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from networks.lres_discriminator import LowResDiscriminatorConfig
from networks.lres_generator import LowResGeneratorConfig
from networks.noise import NoiseBankConfig


@dataclass(frozen=True)
class Preset:
    lres_generator: LowResGeneratorConfig
    lres_discriminator: LowResDiscriminatorConfig


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
    ),
    "tiny": Preset(
        LowResGeneratorConfig(
            input_channels=32,
            channels=(32, 32, 32, 32, 16, 16, 16, 16, 8, 8),
            latent_dim=64,
            noise=NoiseBankConfig(num_filters=8),
        ),
        LowResDiscriminatorConfig(seq_length=32, channels=(8, 16, 16, 32, 32), head_channels=64),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
