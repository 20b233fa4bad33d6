"""Options shared by every command, and the mapping of engine errors to one-line messages and exit codes."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from udlcli import ui
from udlcli.datasets import DATASET_NAMES

_err_console = None


def err_console():
    """The console of error lines (stderr), made on first use: rich is not imported for `udl --help`."""
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False)
    return _err_console


# Options common to every command that writes or reads runs.
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", help="Runs root folder: runs go to OUT/<task>/<name>/.", rich_help_panel="Run"
    ),
]
# Commands that read a run rather than write one (embed, sample): --out is where the newest run is looked for.
RootOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        help="Runs root searched for the newest run when RUN is not given.",
        rich_help_panel="Run",
    ),
]
NameOpt = Annotated[
    Optional[str],
    typer.Option(
        "--name",
        help="Run name (auto-incremented if taken). Default: the task name.",
        rich_help_panel="Run",
    ),
]
DataDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--data-dir",
        help="Dataset folder (torchvision layout). Default: $UDL_DATA_DIR, then ~/.cache/udl.",
        rich_help_panel="Run",
    ),
]
DeviceOpt = Annotated[
    Optional[str],
    typer.Option("--device", help="auto | cpu | cuda | mps (default auto).", rich_help_panel="Run"),
]


DevicesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--devices",
        help="Train on N data-parallel ranks (DDP) launched here by torchrun's elastic launcher: N GPUs "
        "(NCCL), or N CPU processes (gloo) without a GPU or with --device cpu. --batch-size stays the "
        "global batch. Several machines: torchrun -m udlcli (docs/distributed.md).",
        rich_help_panel="Run",
        min=1,
    ),
]
PortOpt = Annotated[
    Optional[int],
    typer.Option(
        "--port",
        help="With --devices: the rendezvous port on this machine (default: a free one).",
        rich_help_panel="Run",
        min=1,
        max=65535,
    ),
]


TrackOpt = Annotated[
    Optional[str],
    typer.Option(
        "--track",
        metavar="none|tensorboard|mlflow",
        help="Log the run to a tracker too: tensorboard (event files in the run folder) or mlflow "
        "(pip install 'udlcli[tensorboard]' / 'udlcli[mlflow]'). Default none.",
        rich_help_panel="Run",
    ),
]
MlflowUriOpt = Annotated[
    Optional[str],
    typer.Option(
        "--mlflow-uri",
        help="With --track mlflow: the tracking URI (sqlite:///mlruns.db, a folder, http://host:port); "
        "default MLflow's own ($MLFLOW_TRACKING_URI, else ./mlruns).",
        rich_help_panel="Run",
    ),
]


def launch_ranks(devices: int | None, device: str | None, port: int | None, command: str) -> bool:
    """--devices N: start N ranks of this very command and wait for them (True: they did the work).

    The ranks get the same arguments without --devices/--port; torchrun's environment tells each one
    its rank. One rank (--devices 1) is the plain run.
    """
    from udlcli.cli import launch
    from udlcli.core import distributed

    if devices is None:
        if port is not None:
            raise error("--port goes with --devices N (the rendezvous port of the ranks)", 2)
        return False
    if distributed.launched():
        raise error(
            "--devices: this process is already one rank of a torchrun job; drop --devices "
            "(torchrun's --nproc-per-node sets the ranks)",
            2,
        )
    with friendly_errors():
        # More ranks than GPUs (--devices 3 on 2) is refused before anything starts.
        launch.plan_devices(devices, device)
        if devices == 1 and port is None:
            return False
        launch.launch(
            _without_launch_flags(sys.argv[1:]), devices, device, port, f"udl {command} --resume"
        )
    return True


def _without_launch_flags(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--devices", "--port"):
            skip = True
        elif not a.startswith(("--devices=", "--port=")):
            out.append(a)
    return out


def config_option(what: str):
    """The --config/-c option of a command whose spec file holds `what` (its help text)."""
    return Annotated[Optional[Path], typer.Option("--config", "-c", help=f"YAML {what}.")]


def set_option(example: str, what: str = "any spec field"):
    """The repeatable --set key=value option, with a command's own example."""
    return Annotated[
        Optional[list[str]],
        typer.Option("--set", help=f"Override {what}: --set {example} (repeatable)."),
    ]


ChannelsOpt = Annotated[
    Optional[int],
    typer.Option(help="Channels n of the first convolution (default 12).", rich_help_panel="Model"),
]
LatentDimOpt = Annotated[
    Optional[int], typer.Option(help="Latent dimension (default 7).", rich_help_panel="Model")
]
LimitOpt = Annotated[
    Optional[int],
    typer.Option(
        help="Use N training images, a stratified seeded sample (quick runs).",
        rich_help_panel="Data",
    ),
]
PrecisionOpt = Annotated[
    Optional[str],
    typer.Option(
        "--precision",
        metavar="auto|32|bf16|16-mixed",
        help="Autocast the forward pass: bf16, or 16-mixed (float16 with loss scaling). Default auto: bf16 where the GPU or CPU (AMX, AVX512-BF16) has bf16 units and the model gains, else 32.",
        rich_help_panel="Run",
    ),
]
CompileOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--compile/--no-compile",
        help="Run the model through torch.compile (the first batches compile; default off).",
        rich_help_panel="Run",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    Optional[int],
    typer.Option(
        "--seed",
        help="Random seed (default 0); same seed on CPU, same numbers.",
        rich_help_panel="Run",
    ),
]
DATASETS_HELP = " | ".join((*DATASET_NAMES, "folder:PATH")) + "."
DatasetOpt = Annotated[
    Optional[str], typer.Option("--dataset", help=DATASETS_HELP, rich_help_panel="Data")
]
ImageSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        "--image-size",
        metavar="N",
        help="Resize images to N x N, 28 to 64 (default: the dataset's; 64 for STL-10 and CelebA).",
        rich_help_panel="Data",
    ),
]
ColorOpt = Annotated[
    Optional[str],
    typer.Option(
        "--color",
        metavar="gray|rgb",
        help="Convert images to gray or rgb (default: the dataset's own; a folder's is detected).",
        rich_help_panel="Data",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="No live progress bar: one line per epoch.", rich_help_panel="Run"
    ),
]
# Commands that train nothing (embed, sample, evaluate): no epochs to report.
QuietReadOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="No spinners or progress bars, and fewer messages.",
        rich_help_panel="Run",
    ),
]


def command_line() -> str:
    return "udl " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def error(msg: str, code: int = 1) -> typer.Exit:
    if os.environ.get("WORLD_SIZE", "1") != "1":  # one rank of several (checked without torch)
        from udlcli.core import distributed

        if distributed.record_error(msg):  # the launcher (or rank 0) says it once for the job
            return typer.Exit(code)
    from rich.markup import escape

    err_console().print(
        f"[bold red]error:[/] {escape(msg)}", soft_wrap=True
    )  # one line, however long
    return typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Run an engine call; known errors become one line on stderr and a non-zero exit (UDL_DEBUG=1: traceback)."""
    from udlcli.errors import UdlError

    debug = bool(os.environ.get("UDL_DEBUG"))
    try:
        yield
    except typer.Exit:
        raise
    except UdlError as e:
        if debug:
            raise
        raise error(str(e), e.exit_code) from None
    except KeyboardInterrupt:
        raise error("interrupted", 130) from None
    except (
        Exception
    ) as e:  # an unexpected failure is a bug: say so in one line, keep the traceback for UDL_DEBUG
        if debug:
            raise
        raise error(
            f"unexpected {e.__class__.__name__}: {e} (this is a bug in udl; rerun with UDL_DEBUG=1 for the traceback)"
        ) from None


class FlagTable:
    """A command's options that set spec fields, declared once: option name -> dotted spec key.

    The same table gives the flags the spec resolver layers over the YAML file, and the options that
    --resume refuses (a resumed run keeps its own spec; only --epochs and --device may change).
    """

    RESUMABLE = ("epochs", "device")

    def __init__(self, **keys: str):
        self.keys = keys

    def flags(self, given: dict) -> dict[str, object]:
        """{spec key: value} for the options given (None: not given); paths as strings."""
        return {
            key: (str(given[name]) if isinstance(given[name], Path) else given[name])
            for name, key in self.keys.items()
            if given.get(name) is not None
        }

    def refuse_on_resume(self, given: dict, **others) -> None:
        """One SpecError naming every option of the table but --epochs/--device, and every other one in `others`, that was given."""
        changed = [
            name for name in self.keys if name not in self.RESUMABLE and given.get(name) is not None
        ]
        changed += [name for name, value in others.items() if value not in (None, False, [])]
        if changed:
            from udlcli.errors import SpecError

            flags = ", --".join(k.strip("_").replace("_", "-") for k in changed)
            raise SpecError(
                f"--resume continues a run with its own spec; only --epochs and --device may change (got --{flags})"
            )


def setup(quiet: bool) -> None:
    ui.set_quiet(quiet)
