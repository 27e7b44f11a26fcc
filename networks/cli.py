"""`lvg-convert`: bring checkpoints from elsewhere into this project's `.safetensors` format."""

from __future__ import annotations

from pathlib import Path

import click

from networks.checkpoint import CheckpointError, open_checkpoint, save
from torch_utils.cli import (
    CONTEXT_SETTINGS,
    DeprecatedArgument,
    deprecated,
    interrupt_on_sigterm,
    output_path,
    parse_res_option,
    with_deprecation_notes,
)


@click.group(context_settings=CONTEXT_SETTINGS)
def main():
    """Convert checkpoints to LongVideoGAN's .safetensors format, or list what one holds.

    \b
    Examples:
      # A released generator of the original project (horseback_lres.pkl, ...):
      lvg-convert official horseback_lres.pkl --out horseback_lres.safetensors
      # One network out of an original training pickle:
      lvg-convert official ckpt-00100000-train.pkl --out D.safetensors --net D
      # What a file holds (networks and kinds; the ADA probability of a training pickle):
      lvg-convert info ckpt-00100000-train.pkl
    """
    interrupt_on_sigterm()


def _open(src: Path, res: tuple[int, int] | None = None):
    if not src.is_file():
        raise click.ClickException(f"{src} does not exist; give the path of a checkpoint")
    try:
        return open_checkpoint(src, res=res)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument(
    "legacy_dst", type=click.Path(path_type=Path), required=False, cls=DeprecatedArgument
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="The .safetensors file to write.  [required]",
)
@click.option(
    "--net",
    "net_name",
    type=click.Choice(["G_ema", "G", "D"]),
    default=None,
    help="Which network of a training pickle or state. Default: G_ema, else G.",
)
@click.option(
    "--res",
    metavar="HxW",
    default=None,
    callback=parse_res_option,
    help="Frame size, e.g. 36x64, if the pickle does not record it [default: 36x64].",
)
@click.option("--height", type=click.IntRange(min=1), default=None, hidden=True)  # deprecated
@click.option("--width", type=click.IntRange(min=1), default=None, hidden=True)  # deprecated
@with_deprecation_notes
def official(
    src: Path,
    legacy_dst: Path | None,
    out: Path | None,
    net_name: str | None,
    res: tuple[int, int] | None,
    height: int | None,
    width: int | None,
):
    """Convert a checkpoint SRC (an original LongVideoGAN pickle, or a training state) to
    --out FILE (.safetensors).

    The pickle is read with a restricted unpickler: the source code embedded in it is never
    executed, only tensors and network state are read. CUDA-saved tensors load on CPU.
    """
    dst = output_path("--out", out, "DST", legacy_dst)
    if height or width:
        if res is not None:
            raise click.UsageError("give --res only (not also --height/--width)")
        deprecated("--height/--width are deprecated; use --res HxW")
        res = (height, width)
    if dst.exists():
        raise click.ClickException(f"{dst} already exists; choose another name or delete it first")
    ckpt = _open(src, res)
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
    lines = [f"{src}: {ckpt.format}"]  # printed once every network has loaded: else one error line
    for role in ckpt.kinds:
        try:
            net = ckpt.network(role)
        except CheckpointError as e:
            raise click.ClickException(str(e)) from None
        params = sum(p.numel() for p in net.parameters())
        lines.append(f"  {role}: {net.kind}, {params:,} parameters")
    click.echo("\n".join(lines))
    for key, value in ckpt.info.items():
        click.echo(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")


if __name__ == "__main__":
    main()
