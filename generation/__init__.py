"""Video generation: a seekable noise stream, seamless loops and transitions, and a streaming
low-res -> super-resolution -> encoder pipeline (`lvg-generate`)."""

from generation.noise_stream import NoiseStream
from generation.pipeline import Frame, generate_segments, generate_video
from generation.timeline import Loop, Timeline, Transition

__all__ = [
    "Frame",
    "Loop",
    "NoiseStream",
    "Timeline",
    "Transition",
    "generate_segments",
    "generate_video",
]
