"""Every sub-command refuses impossible flag values with one line and status 2, never a traceback."""

from __future__ import annotations

import socket

import pytest

from realtime.tools.cli import main

INKS = "tests/data/golden_preprocess.npz"  # any existing file: argparse refuses the flag first


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "x.png", "--timeout", "-1"],
        ["predict", "x.png", "--timeout", "nan"],
        ["predict", "x.png", "--timeout", "0"],
        ["replay", INKS, "--speed", "nan"],
        ["replay", INKS, "--speed", "0"],
        ["replay", INKS, "--pen-up-ms", "-5"],
        ["replay", INKS, "--limit", "-1"],
        ["replay", INKS, "--concurrency", "0"],
        ["replay", INKS, "--timeout", "inf"],
        ["replay", INKS, "--numbers", "-2"],
        ["gateway", "--port", "99999"],
        ["gateway", "--port", "-1"],
        ["gateway", "--management-port", "70000"],
        ["serve", "--workers", "0"],
        ["serve", "--workers", "100000"],
        ["gateway", "--stage", ""],
        ["gateway", "--stage", "a/b"],
        ["gateway", "--stage", "@connections"],
        ["predict", "x.png", "--url", "http://[::1"],
        ["predict", "x.png", "--url", "ftp://example.com"],
        ["predict", "x.png", "--url", "http://" + "a" * 300],
        ["predict", "x.png", "--url", "http://xn--"],
        ["predict", "x.png", "--url", "http://a\x01b"],
    ],
)
def test_an_impossible_flag_value_is_one_usage_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith(f"mnist-live {argv[0]}: error: argument {argv[-2]}") and err.count("\n") == 1


@pytest.mark.parametrize("command", [["predict", "x.png"], ["replay", INKS], ["gateway"], ["serve"]])
def test_an_unknown_flag_is_named_with_its_commands_usage(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--bogus", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    name = f"mnist-live {command[0]}"
    assert err == f"{name}: error: unrecognized arguments: --bogus 1 (see {name} --help)\n"


def test_gateway_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["gateway", "--port", str(port), "--management-port", "0"]) == 2
    err = capsys.readouterr().err.splitlines()  # the handler's JSON start-up log line comes first
    assert err[-1].startswith("mnist-live gateway: cannot listen on 127.0.0.1") and "Traceback" not in err


def test_gateway_on_a_bad_host_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "--host", "256.1.1.1", "--port", "0", "--management-port", "0"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("mnist-live gateway: cannot listen on 256.1.1.1")
