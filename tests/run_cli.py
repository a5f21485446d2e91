"""Run the `stviz` command in-process, as the tests that check exit codes and messages do."""

from __future__ import annotations

import os

import pytest

from stviz.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `stviz ARGS`; paths and bytes go through fsdecode, so
    a name that is not UTF-8 reaches the command as Python would pass it."""
    with pytest.raises(SystemExit) as exit_info:
        main([os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
