"""Run the track CLI in-process: (exit code, stdout, stderr)."""
import pytest

from tracker import cli


def run_track(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err
