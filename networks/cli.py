"""`lvg-convert`: bring checkpoints from elsewhere into this project's `.safetensors` format."""

from __future__ import annotations

from pathlib import Path

import click

from networks.checkpoint import save
from networks.official import OfficialCheckpointError, find_networks, import_network, load_official


@click.group()
def main():
    """Convert checkpoints to LongVideoGAN's .safetensors format.

    \b
    Examples:
      # A released generator of the original project (horseback_lres.pkl, ...):
      lvg-convert official horseback_lres.pkl horseback_lres.safetensors
      # One network out of an original training pickle:
      lvg-convert official ckpt-00100000-train.pkl D.safetensors --net D
    """


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--net",
    "net_name",
    default=None,
    help="Which network of a training pickle (G_ema, G, D). Default: G_ema.",
)
@click.option(
    "--height",
    type=int,
    default=None,
    help="Output height, if the pickle does not record it (default 36).",
)
@click.option(
    "--width",
    type=int,
    default=None,
    help="Output width, if the pickle does not record it (default 64).",
)
def official(src: Path, dst: Path, net_name: str | None, height: int | None, width: int | None):
    """Convert an original LongVideoGAN pickle SRC to DST (.safetensors).

    The pickle is read with a restricted unpickler: the source code embedded in it is never
    executed, only tensors and network state are read. CUDA-saved tensors load on CPU.
    """
    if not src.is_file():
        raise click.ClickException(
            f"{src} does not exist; give the path of an original .pkl checkpoint"
        )
    if dst.exists():
        raise click.ClickException(f"{dst} already exists; choose another name or delete it first")
    try:
        nets = find_networks(load_official(src))
        if not nets:
            raise OfficialCheckpointError(f"{src} contains no network")
        if net_name is None:
            net_name = "" if "" in nets else "G_ema" if "G_ema" in nets else next(iter(nets))
        if net_name not in nets:
            raise OfficialCheckpointError(
                f"{src} has no network {net_name!r}; it has {sorted(nets)}"
            )
        net = import_network(nets[net_name], height=height, width=width)
    except OfficialCheckpointError as e:
        raise click.ClickException(str(e)) from None
    save(
        net, dst, metadata={"source": f"official:{src.name}" + (f":{net_name}" if net_name else "")}
    )
    params = sum(p.numel() for p in net.parameters())
    click.echo(f"wrote {dst}: {net.kind}, {params:,} parameters")


if __name__ == "__main__":
    main()
