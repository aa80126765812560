"""Start-up refusals without a server: one line on stderr, exit 2, for the errors named only."""

from __future__ import annotations

import pytest

from serving.startup import load_settings, refusing


def _refusal(
    capsys: pytest.CaptureFixture[str], exit_info: pytest.ExceptionInfo[SystemExit]
) -> str:
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line


def test_an_error_it_names_refuses_with_its_prefix_and_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info, refusing(KeyError, LookupError, prefix="x: "):
        raise LookupError("no such thing")
    assert _refusal(capsys, exit_info) == "delivery-eta: refusing to start: x: no such thing"


def test_other_errors_pass_through_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="a bug"), refusing(KeyError):
        raise ValueError("a bug")
    assert capsys.readouterr().err == ""


def test_invalid_settings_are_named_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_ETA_MAX_BATCH_ROWS", "0")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert _refusal(capsys, exit_info) == (
        "delivery-eta: refusing to start: invalid settings: "
        "max_batch_rows: Input should be greater than or equal to 1"
    )
