"""`mrmp convert sbu | fpha | ntu | csv`: a dataset written as the documented dataset folder
(docs/datasets.md), then read back with read_dataset_folder to check it trains as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from mrmp.skeleton import get_layout
from training.datasets import SkeletonDataset, data_root, load_fpha, load_sbu, read_dataset_folder
from training.datasets.folder import TEST_FOLD, TRAIN_FOLD
from training.datasets.folder_writer import Split, write_dataset_folder
from training.datasets.frame_csv import read_frame_csv
from training.datasets.ntu import BENCHMARKS, load_ntu

convert_app = typer.Typer(
    help="Write SBU, FPHA, NTU RGB+D .skeleton files or a per-frame CSV as a dataset folder.",
    no_args_is_help=True,
)

Out = Annotated[Path, typer.Option(help="the dataset folder to write (new or empty)")]
DeclareLayout = Annotated[
    bool,
    typer.Option(help="declare the layout (joint names, bones, persons, frame) in dataset.json"),
]
DataDir = Annotated[
    str | None, typer.Option(help="the data root (default: $MRMP_DATA_DIR, ../shared/data)")
]
# The skipped NTU files named in the output, at most.
SHOWN = 10


def _fail(command: str, error: Exception) -> typer.Exit:
    typer.echo(f"mrmp convert {command}: {error}", err=True)
    return typer.Exit(2)


def _write(
    command: str, dataset: SkeletonDataset, out: Path, *, declare_layout: bool, split: Split
) -> None:
    """Write the folder, read it back, and say what it holds."""
    try:
        write_dataset_folder(dataset, out, declare_layout=declare_layout, split=split)
        written = read_dataset_folder(out)
    except (ValueError, OSError) as e:
        raise _fail(command, e) from None
    folds, counts = np.unique(written.folds, return_counts=True)
    if split == "train-test":
        per_fold = f"{counts[folds == TRAIN_FOLD][0]} train, {counts[folds == TEST_FOLD][0]} test"
    else:
        per_fold = "per fold " + ", ".join(str(n) for n in counts.tolist())
    typer.echo(
        f"{out}: {len(written)} sequences ({per_fold}), {len(written.class_names)} classes, "
        f"layout {written.layout.name!r} ({written.layout.num_joints} joints)"
    )


@convert_app.command("sbu")
def sbu_cmd(out: Out, data_dir: DataDir = None, declare_layout: DeclareLayout = False) -> None:
    """SBU Kinect Interaction as its reader gives it: camera-frame millimetres, the five
    official folds."""
    _write_builtin("sbu", load_sbu, data_dir, out, declare_layout=declare_layout, split="folds")


@convert_app.command("fpha")
def fpha_cmd(out: Out, data_dir: DataDir = None, declare_layout: DeclareLayout = False) -> None:
    """First-Person Hand Action as its reader gives it: depth-camera millimetres, the official
    1:1 split as train/test."""
    _write_builtin(
        "fpha", load_fpha, data_dir, out, declare_layout=declare_layout, split="train-test"
    )


def _write_builtin(
    command: str,
    load: Callable[[Path], SkeletonDataset],
    data_dir: str | None,
    out: Path,
    *,
    declare_layout: bool,
    split: Split,
) -> None:
    try:
        dataset = load(data_root(data_dir))
    except (ValueError, OSError) as e:
        raise _fail(command, e) from None
    _write(command, dataset, out, declare_layout=declare_layout, split=split)


@convert_app.command("ntu")
def ntu_cmd(
    source: Annotated[Path, typer.Argument(help="a folder of NTU RGB+D .skeleton files")],
    out: Out,
    benchmark: Annotated[
        str, typer.Option(help=f"the split: {', '.join(BENCHMARKS)}")
    ] = "cross-subject",
) -> None:
    """NTU RGB+D 60 / 120 .skeleton files: two persons of the Kinect v2 skeleton (the two most
    moving bodies), train/test by the benchmark; files with no body are left out."""
    chosen = next((known for known in BENCHMARKS if known == benchmark), None)
    if chosen is None:
        raise typer.BadParameter(f"benchmark must be one of {', '.join(BENCHMARKS)}")
    try:
        dataset, skipped = load_ntu(source, chosen, progress=True)
    except (ValueError, OSError) as e:
        raise _fail("ntu", e) from None
    if skipped:
        more = f", ... ({len(skipped) - SHOWN} more)" if len(skipped) > SHOWN else ""
        typer.echo(
            f"left out {len(skipped)} file(s) with no body in any frame: "
            f"{', '.join(skipped[:SHOWN])}{more}"
        )
    _write("ntu", dataset, out, declare_layout=True, split="train-test")


@convert_app.command("csv")
def csv_cmd(
    source: Annotated[Path, typer.Argument(help="a per-frame CSV (docs/datasets.md)")],
    out: Out,
    layout: Annotated[str, typer.Option(help="the built-in layout of the joint columns")],
    name: Annotated[
        str | None, typer.Option(help="the dataset's name (default: the file's)")
    ] = None,
    planar: Annotated[
        bool, typer.Option(help="a 2D tool's file: x and y columns only, z written as 0")
    ] = False,
    folds: Annotated[
        int, typer.Option(help="without a split column: folds to deal each class's sequences into")
    ] = 5,
    declare_layout: DeclareLayout = False,
) -> None:
    """A per-frame CSV (sequence, frame, label, optional split, then each joint's x, y, z)."""
    try:
        skeleton = get_layout(layout)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0])) from None
    try:
        dataset, split = read_frame_csv(
            source, skeleton, name=name or source.stem, planar=planar, folds=folds
        )
    except (ValueError, OSError) as e:
        raise _fail("csv", e) from None
    _write("csv", dataset, out, declare_layout=declare_layout, split=split)
