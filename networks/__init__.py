"""The networks of LongVideoGAN: what the paper draws in its architecture figures."""

from networks.checkpoint import CheckpointError, load, save

__all__ = ["CheckpointError", "load", "save"]
