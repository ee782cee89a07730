"""Running the CLI in-process for tests: exit code, stdout, stderr — and never a traceback."""

from __future__ import annotations

import pytest

from microagents.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return int(exc.value.code or 0), out, err
