"""Resumable training states, kept apart from the inference snapshots (EDM2 style).

A state holds G, D, G_ema, both optimisers, the step, the stage's extra state (ADA), every
random-number generator (torch, numpy, Python, the training generator) and the data position.
States are written to a temporary name and renamed, so a run killed while writing (even by
SIGKILL) leaves the previous state intact; the newest `keep` states are kept.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import torch

from torch_utils.misc import atomic_path, load_tensors

STATE_PATTERN = re.compile(r"state-(\d{8})\.pt")


def state_path(outdir: Path, step: int) -> Path:
    return outdir / "states" / f"state-{step:08d}.pt"


def list_states(outdir: Path) -> list[Path]:
    """Complete states, oldest first (temporary files of interrupted writes are ignored)."""
    folder = outdir / "states"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if STATE_PATTERN.fullmatch(p.name))


def rng_state(gen: torch.Generator) -> dict:
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global state is what we save)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "state": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": np_state["state"]["pos"],
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        },
        "python": random.getstate(),
        "train": gen.get_state(),
    }


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["state"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    random.setstate(_as_tuples(state["python"]))
    gen.set_state(state["train"])


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_state(path: Path, state: dict, keep: int) -> Path:
    """Write atomically, then delete all but the newest `keep` states."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_states(path.parent.parent)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_state(path: Path) -> dict:
    """Read a state (tensors and plain data only: `weights_only`, no code runs)."""
    try:
        return load_tensors(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no training state at {path}") from None
    except Exception as e:  # truncated or foreign file
        raise ValueError(
            f"{path} is not a readable training state ({type(e).__name__}: {e})"
        ) from e
