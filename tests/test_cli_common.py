"""tracker/cli_common.py: the one KEY=VALUE parser and the one-line, exit-2 convention of the three CLIs."""
import errno

import pytest

from tracker.cli_common import CLIError, Parser, parse_key_values, parse_value, run_cli


@pytest.mark.parametrize("text, value", [
    ("true", True), ("True", True), ("false", False), ("False", False),  # JSON and Python spellings alike
    ("null", None), ("None", None),
    ("0", 0), ("0.4", 0.4), ("-1e-3", -1e-3), ("1_000", 1000),
    ("[1, 2]", (1, 2)), ("(1, 2)", (1, 2)), ("[]", ()),  # lists become tuples: configs are frozen
    ('"quoted"', "quoted"), ("'quoted'", "quoted"),
    ("pyramid", "pyramid"), ("dsst ", "dsst"), ("", ""),
    ("NaN", "NaN"), ("Infinity", "Infinity"), ("nan", "nan"),  # not numbers: a float parameter rejects them
    ("{1: 2", "{1: 2"), ("__import__('os')", "__import__('os')"),  # never evaluated
])
def test_values_parse_as_json_or_python_literals_else_text(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_key_values_normalise_keys_and_later_items_win():
    assert parse_key_values(["lost_ratio=0.4", " colour-weight = 0 ", "rgb=true", "lost_ratio=0"]) == \
        {"lost_ratio": 0, "colour_weight": 0, "rgb": True}
    assert parse_key_values(["note=a=b"]) == {"note": "a=b"}  # the first = splits
    assert parse_key_values(None) == {} and parse_key_values([]) == {}


@pytest.mark.parametrize("item", ["lost_ratio", "=0.4", " =1", ""])
def test_items_without_a_key_name_the_option(item):
    with pytest.raises(ValueError, match=r"^--set expects KEY=VALUE"):
        parse_key_values([item], "--set")


def test_parser_usage_errors_are_one_line_cli_errors():
    p = Parser(prog="prog")
    p.add_argument("--n", type=int, required=True)
    with pytest.raises(CLIError, match=r"^argument --n: invalid int value: 'x' \(see prog --help\)$"):
        p.parse_args(["--n", "x"])
    sub = p.add_subparsers(dest="cmd").add_parser("go")  # sub-command parsers inherit the class
    assert isinstance(sub, Parser)
    with pytest.raises(CLIError, match=r"see prog go --help"):
        sub.parse_args(["--bogus"])


def _raise(e):
    def command():
        raise e
    return command


@pytest.mark.parametrize("error, line", [
    (CLIError("--budget must be in (0, 1]"), "prog: error: --budget must be in (0, 1]"),
    (OSError(errno.ENOSPC, "No space left on device", "out/model.pt"),
     "prog: error: No space left on device: out/model.pt"),
    (LookupError("no such sequence"), "prog: error: no such sequence"),  # one of the CLI's own user_errors
])
def test_run_cli_turns_user_errors_into_one_line_and_status_2(capsys, error, line):
    assert run_cli("prog", _raise(error), user_errors=(LookupError,)) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_run_cli_passes_status_and_lets_bugs_and_help_through(capsys):
    assert run_cli("prog", lambda: None) == 0 and run_cli("prog", lambda: 130) == 130
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_cli("prog", lambda: 1 / 0)
    with pytest.raises(SystemExit):  # --help exits 0 through argparse
        run_cli("prog", _raise(SystemExit(0)))
    with pytest.raises(KeyboardInterrupt):
        run_cli("prog", _raise(KeyboardInterrupt()))
    assert run_cli("prog", _raise(KeyboardInterrupt()), interrupted=130) == 130
    assert capsys.readouterr().err == "prog: interrupted\n"
