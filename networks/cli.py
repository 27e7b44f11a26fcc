"""`lvg-convert`: bring checkpoints from elsewhere into this project's `.safetensors` format."""

from __future__ import annotations

from pathlib import Path

import click

from networks.checkpoint import CheckpointError, open_checkpoint, save


@click.group()
def main():
    """Convert checkpoints to LongVideoGAN's .safetensors format, or list what one holds.

    \b
    Examples:
      # A released generator of the original project (horseback_lres.pkl, ...):
      lvg-convert official horseback_lres.pkl horseback_lres.safetensors
      # One network out of an original training pickle:
      lvg-convert official ckpt-00100000-train.pkl D.safetensors --net D
      # What a file holds (networks and kinds; the ADA probability of a training pickle):
      lvg-convert info ckpt-00100000-train.pkl
    """


def _open(src: Path, res: tuple[int, int] | None = None):
    if not src.is_file():
        raise click.ClickException(f"{src} does not exist; give the path of a checkpoint")
    try:
        return open_checkpoint(src, res=res)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--net",
    "net_name",
    type=click.Choice(["G_ema", "G", "D"]),
    default=None,
    help="Which network of a training pickle or state. Default: G_ema, else G.",
)
@click.option(
    "--height",
    type=click.IntRange(min=1),
    default=None,
    help="Frame height, if the pickle does not record it (default 36).",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=None,
    help="Frame width, if the pickle does not record it (default 64).",
)
def official(src: Path, dst: Path, net_name: str | None, height: int | None, width: int | None):
    """Convert a checkpoint SRC (an original LongVideoGAN pickle, or a training state) to DST
    (.safetensors).

    The pickle is read with a restricted unpickler: the source code embedded in it is never
    executed, only tensors and network state are read. CUDA-saved tensors load on CPU.
    """
    if dst.exists():
        raise click.ClickException(f"{dst} already exists; choose another name or delete it first")
    ckpt = _open(src, (height, width) if height or width else None)
    try:
        role = ckpt.choose(net=net_name)
        net = ckpt.network(role)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    save(net, dst, metadata={"source": f"{ckpt.format}:{src.name}:{role}"}, role=role)
    params = sum(p.numel() for p in net.parameters())
    click.echo(f"wrote {dst}: {net.kind} ({role}), {params:,} parameters")


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
def info(src: Path):
    """List the networks in SRC (any format this project reads) and their kinds."""
    ckpt = _open(src)
    click.echo(f"{src}: {ckpt.format}")
    for role in ckpt.kinds:
        try:
            net = ckpt.network(role)
        except CheckpointError as e:
            raise click.ClickException(str(e)) from None
        params = sum(p.numel() for p in net.parameters())
        click.echo(f"  {role}: {net.kind}, {params:,} parameters")
    for key, value in ckpt.info.items():
        click.echo(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")


if __name__ == "__main__":
    main()
