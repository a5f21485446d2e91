"""The `stviz` command: parse options, call `stviz.api`, print with Rich.

One module per family of commands; each is a thin layer over the Python API.
Exit codes: 0 success, 2 a user error (one line on stderr), 1 a bug.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

import click
from rich.markup import escape

from stviz import __version__
from stviz.cli import evaluate, explain, info, report, train
from stviz.cli.common import err, show_warning
from stviz.errors import StvizError
from stviz.files import shown


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="stviz")
def cli() -> None:
    """Show where and when a video action recognition model looked, and measure it.

    \b
    Start with:
      stviz info VIDEO               what stviz sees in a video
      stviz explain VIDEO            where and when the model looked: heatmap video, figures
      stviz compare VIDEO            its attention beside Grad-CAM & co., and how they agree
      stviz models                   the checkpoints it can use
      stviz localize-eval DATASET    which method localizes the action best, in numbers
      stviz report DIR               an output folder as one interactive HTML page
    """


for _command in (info.info, info.models, explain.explain, explain.compare, train.synth,
                 train.train, evaluate.evaluate, evaluate.annotations, evaluate.localize_eval,
                 report.report):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors exit 2 with one line, bugs exit 1 with a traceback."""
    warnings.showwarning = show_warning
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \xNN
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        cli.main(args=argv, prog_name="stviz", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.UsageError as exc:  # one line, like every other user error
        hint = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
        message = shown(exc.format_message().rstrip("."))
        err.print(f"[red]error:[/] {escape(message)}{escape(hint)}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StvizError as exc:
        err.print(f"[red]error:[/] {escape(shown(str(exc)))}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(0)


def run() -> None:
    """The `stviz` executable: `main()`, then leave without Python's interpreter teardown.

    With torch loaded, that teardown (finalizing thousands of modules and objects) takes
    over a second after the work is done. Every file stviz writes is complete and closed
    before `main` returns, so only the standard streams need flushing.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - main always exits
        code = 0
    if not isinstance(code, int):  # sys.exit("message") prints it and exits 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
