"""The networks of LongVideoGAN: what the paper draws in its architecture figures."""

from networks.checkpoint import CheckpointError, load, network_record, open_checkpoint, save

__all__ = ["CheckpointError", "load", "network_record", "open_checkpoint", "save"]
