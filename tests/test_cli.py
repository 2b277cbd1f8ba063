"""The `rsna` entry point: every subcommand documents itself, the parser is light,
and expected errors become one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rsna_pkg.bench_command import BENCHES
from rsna_pkg.cli import COMMANDS, main


@pytest.mark.parametrize("argv", [[name] for name in COMMANDS] + [["bench", b] for b in BENCHES])
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rsna {' '.join(argv)}")


HEAVY = ("numpy", "pandas", "pydicom", "imagecodecs", "PIL", "scipy", "torch", "matplotlib",
         "nvidia.dali", "sklearn")  # fmt: skip


@pytest.mark.parametrize("argv", [["--help"], ["no-such-command"], ["infer", "--help"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    """``rsna --help`` (and a mistyped command) import no command module at all; a
    command's own --help imports that command's module only (infer's is light)."""
    code = (
        "import sys; from rsna_pkg.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('heavy:', *(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy:", out.stdout[-500:]


def test_building_the_parser_for_a_command_adds_only_its_arguments() -> None:
    """Every other subcommand stays a one-line entry until it is the one chosen."""
    from rsna_pkg.cli import build_parser

    args = build_parser(["infer", "--data", "d", "--model", "m", "--out", "o"]).parse_args(
        ["infer", "--data", "d", "--model", "m", "--out", "o"]
    )
    assert args.command == "infer" and callable(args._run)
    with pytest.raises(SystemExit):  # train's options are unknown to a parser built for infer
        build_parser(["infer"]).parse_args(["train", "--epochs", "1"])


def test_input_error_is_one_line_and_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    code = main(["infer", "--data", str(missing), "--model", str(tmp_path / "m.pt"),
                 "--out", str(tmp_path / "s.csv")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("rsna infer: error:")
    assert "nowhere" in err[-1] or "m.pt" in err[-1]


def test_module_entry_point_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rsna_pkg", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("rsna_pkg ")


def test_ctrl_c_during_a_held_block_is_raised_when_it_ends() -> None:
    """A Ctrl-C that arrives while pyplot is imported (training's first curves.png comes
    right after epoch 1) waits for the import to finish: raised inside, it became
    ``ImportError: initialization failed`` from ft2font, a traceback and exit 1."""
    import os
    import signal

    from rsna_pkg.lazy_pyplot import interrupts_held

    # Python's own Ctrl-C handler, also when the tests run in a background job, which starts
    # with SIGINT ignored (a held Ctrl-C is then rightly dropped: the process ignores it)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        finished = False
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler has run by now; the block still finishes
                pass
            finished = True
        assert finished
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with interrupts_held():  # nothing received: nothing raised
            pass
    finally:
        signal.signal(signal.SIGINT, outer)
