"""The backtest driver and ``forewarn backtest`` on a slice of the real Backblaze file."""

from __future__ import annotations

import gc
import gzip
import json
import sys
from pathlib import Path

import pytest

from pipeline import gc_tuning
from pipeline.backtest import PRESETS, build_report, run_backtest, strip_timing
from pipeline.backtest.variants import CounterRules
from pipeline.cli import main
from pipeline.cli.backtest_cmd import _limited
from pipeline.datasets import open_dataset
from pipeline.durations import parse_duration
from pipeline.engine import EngineConfig
from pipeline.errors import ConfigError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BACKBLAZE = DATA / "backblaze" / "backblaze-2013-04-10_2013-05-19.csv.gz"
needs_data = pytest.mark.skipif(not BACKBLAZE.exists(), reason="shared data not present")
SLICE = 45_000  # two days of readings, with the first failures


def _slice_report(seed: int = 0) -> dict[str, object]:
    dataset = open_dataset("backblaze", BACKBLAZE)
    config = EngineConfig(**PRESETS["backblaze"], seed=seed)
    result = run_backtest(
        _limited(dataset.events(), SLICE), config, rule_counters=config.counter_metrics
    )
    return build_report(
        result, dataset="slice", fmt="backblaze", time_unit="days", time_unit_seconds=86400.0
    )


@needs_data
def test_slice_report_has_every_field_and_is_deterministic() -> None:
    first = _slice_report()
    for key in (
        "readings",
        "devices",
        "failures",
        "time_unit",
        "readings_per_second",
        "peak_rss_mb",
        "state_bytes_per_device",
        "config",
        "seed",
    ):
        assert key in first
    for variant, keys in (
        ("model", ("fdr", "far", "median_lead", "roc_auc", "alerts")),
        ("baseline", ("fdr", "far", "median_lead")),
        ("anomaly_only", ("fdr", "far")),
        ("rule_budgeted", ("fdr", "far", "median_lead", "alerts", "fdr_lead_1")),
        ("rule_any_rose", ("fdr", "far", "median_lead", "alerts")),
        ("rule_any_positive", ("fdr", "far", "median_lead", "alerts")),
    ):
        assert all(key in first[variant] for key in keys)  # type: ignore[operator]
    assert first["readings"] == SLICE
    assert first["error_counters"] == ["smart_197_raw", "smart_5_raw"]  # from the data
    assert first["state_bytes_per_device"]["max"] <= 4096  # type: ignore[index]
    second = _slice_report()
    assert json.dumps(strip_timing(first), sort_keys=True) == json.dumps(
        strip_timing(second), sort_keys=True
    )


def test_parse_duration() -> None:
    assert parse_duration("14d", 86400.0).days == 14
    assert parse_duration("36h", 86400.0).total_seconds() == 36 * 3600
    assert parse_duration("30", 86400.0).days == 30
    assert parse_duration("30cycles", 60.0).total_seconds() == 1800
    for bad in ("", "abc", "14x", "0d", "-3d"):
        with pytest.raises(ConfigError):
            parse_duration(bad, 86400.0)
    for negative in ("0d", "-3d", " -5 h"):
        with pytest.raises(ConfigError, match="must be positive"):
            parse_duration(negative, 86400.0)


def _run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["forewarn", "backtest", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("forewarn: error:")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["backblaze"], "Missing argument 'PATH'"),
        (["backblaze", "x.csv", "--partitions", "0"], "'--partitions'"),
        (["backblaze", "x.csv", "--seed", "many"], "'--seed'"),
    ],
)
def test_cli_usage_errors_are_one_line_naming_the_flag(
    args: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run_cli(args, monkeypatch, capsys)
    line = _one_line_error(code, err)
    assert expected in line
    assert line.endswith("(see `forewarn backtest --help`)")
    assert out == ""


def test_cli_help_and_no_arguments_keep_their_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run_cli(["--help"], monkeypatch, capsys)
    assert code == 0
    assert "Usage" in out
    monkeypatch.setattr(sys, "argv", ["forewarn"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2  # as Typer's own: help shown, nothing run
    assert "Usage" in captured.out + captured.err


def test_cli_sets_the_collector_thresholds_for_long_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # CPython's default
        _run_cli(["--help"], monkeypatch, capsys)
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
    finally:
        gc.set_threshold(*before)


def test_cli_bad_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_cli(["backblaze", str(tmp_path / "missing.csv")], monkeypatch, capsys)
    assert "missing.csv" in _one_line_error(code, err)


def test_cli_unknown_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_cli(["parquet", str(tmp_path)], monkeypatch, capsys)
    assert "parquet" in _one_line_error(code, err)


def _tiny_backblaze(path: Path, bad_row: str | None = None) -> Path:
    rows = [
        "date,serial_number,model,capacity_bytes,failure,smart_1_raw,smart_5_raw,"
        "smart_9_raw,smart_194_raw,smart_197_raw",
        "2013-04-10,S1,M1,100,0,0,0,10,30,0",
        "2013-04-10,S2,M1,100,0,0,0,10,30,0",
        "2013-04-11,S1,M1,100,0,0,1,34,30,0",
        "2013-04-11,S2,M1,100,1,0,5,34,31,2",
    ]
    if bad_row is not None:
        rows.append(bad_row)
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(rows) + "\n")
    return path


def test_cli_malformed_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_backblaze(tmp_path / "bad.csv.gz", "2013-04-12,S1,M1,100,0,0,abc,58,30,0")
    code, _, err = _run_cli(
        ["backblaze", str(data), "--report-dir", str(tmp_path / "r")], monkeypatch, capsys
    )
    _one_line_error(code, err)


def test_cli_bad_horizon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_backblaze(tmp_path / "ok.csv.gz")
    code, _, err = _run_cli(["backblaze", str(data), "--horizon", "soon"], monkeypatch, capsys)
    assert "--horizon" in _one_line_error(code, err)


def test_cli_bad_fleet_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_backblaze(tmp_path / "ok.csv.gz")
    code, _, err = _run_cli(["backblaze", str(data), "--fleet-model", "gpt"], monkeypatch, capsys)
    assert "gpt" in _one_line_error(code, err)


def test_cli_bad_negative_rate_names_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_backblaze(tmp_path / "ok.csv.gz")
    code, _, err = _run_cli(["backblaze", str(data), "--negative-rate", "2"], monkeypatch, capsys)
    assert "bad --negative-rate: negative_rate must be in (0, 1]" in _one_line_error(code, err)


def test_cli_writes_report_and_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_backblaze(tmp_path / "ok.csv.gz")
    out = tmp_path / "report"
    code, stdout, _ = _run_cli(
        ["backblaze", str(data), "--report-dir", str(out), "--seed", "3"], monkeypatch, capsys
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["readings"] == 4
    assert report["failures"] == 1
    assert report["seed"] == 3
    assert report["baseline"]["fdr"] == 1.0  # S2's counters rose on its last day
    assert (out / "backtest.png").stat().st_size > 0
    assert "baseline" in stdout
    assert "rule_budgeted" in stdout


def test_counter_rules_fire_on_positive_and_rising_counters() -> None:
    rules = CounterRules()
    counters = ("a", "b")
    assert rules.fires("d", {"a": 0.0, "b": 0.0}, counters) == (False, False)
    assert rules.fires("d", {"a": 0.0, "b": 2.0}, counters) == (True, True)
    assert rules.fires("d", {"a": 0.0, "b": 2.0}, counters) == (True, False)
    assert rules.fires("d", {"a": 0.0, "b": 1.0}, counters) == (True, False)  # a fall
    # the recognised counters changed: no previous values to compare with
    assert rules.fires("d", {"a": 5.0, "b": 1.0}, ("a",)) == (True, False)
    rules.reset("d")
    assert rules.fires("d", {"a": 9.0}, ("a",)) == (True, False)


def test_alert_budget_values() -> None:
    from pipeline.cli.backtest_cmd import parse_budget

    assert parse_budget("0") == 0.0
    assert parse_budget("0.25") == 0.25
    assert parse_budget("none") is None
    assert parse_budget("OFF") is None
    for bad in ("-1", "x", "nan", "inf"):
        with pytest.raises(ConfigError, match="--alert-budget"):
            parse_budget(bad)


def test_help_lists_every_reader_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.datasets import OPTION_KEYS

    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = _run_cli(["--help"], monkeypatch, capsys)
    assert code == 0
    text = " ".join(out.split())
    for keys in OPTION_KEYS.values():
        for key in keys:
            assert key in text
    for flag in ("--device", "--failures", "--maintenance", "--budget-period", "--verbose"):
        assert flag in text


def test_horizon_units_people_write() -> None:
    hour = 3600.0
    cases = (
        ("48hours", 48 * hour),
        ("5min", 300.0),
        ("90s", 90.0),
        ("2w", 14 * 86400.0),
        ("1hour", hour),
        ("3days", 3 * 86400.0),
    )
    for text, seconds in cases:
        assert parse_duration(text, 86400.0).total_seconds() == seconds
    with pytest.raises(ConfigError, match=r"accepted: s, m/min, h/hour\(s\), d/day\(s\)"):
        parse_duration("48hourz", 86400.0)


def test_one_warning_per_condition_that_makes_the_run_meaningless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.datasets.synthetic import write_single_series

    data, failures = write_single_series(tmp_path / "pump", days=3)  # no failure yet
    out = tmp_path / "r"
    code, stdout, _ = _run_cli(
        [
            "csv", str(data), "--device", "pump1", "--time-column", "timestamp",
            "--failures", str(failures), "--horizon", "1d", "--alert-budget", "0.25",
            "--no-plot", "--report-dir", str(out),
        ],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    starts = [w.split(":")[0] for w in report["warnings"]]
    assert starts == [
        "columns that look like labels are not used as metrics",
        "no model trained",
        "rule baseline inactive",
        "alert budget 0.25 per 1,000 devices per day allowed 0.00 new alerts over the whole run, "
        "fewer than one (raise --alert-budget, or --alert-budget none for no budget)",
        "no failures in the data",
    ]
    assert report["alerts_allowed"] < 1
    assert stdout.count("warning: ") == 5
    assert "no model yet" in stdout


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    from pipeline.cli.backtest_cmd import _progress

    out = io.StringIO()
    console = Console(file=out)
    with Progress(console=console) as progress:
        show = _progress(console, progress, progress.add_task("backtest", total=None))
        for n in range(10_000, 310_000, 10_000):
            show(n)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("backtest:")]
    assert [line.split(" readings")[0] for line in lines] == [
        "backtest: 100,000",
        "backtest: 200,000",
        "backtest: 300,000",
    ]


def test_cli_report_dir_that_cannot_be_written_fails_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report folder that cannot be created is refused in one line before the run (it
    was a traceback after it, throwing the run away)."""
    data = _tiny_backblaze(tmp_path / "ok.csv.gz")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = _run_cli(
        ["backblaze", str(data), "--report-dir", str(blocker / "reports")], monkeypatch, capsys
    )
    assert str(blocker) in _one_line_error(code, err)
    assert out == ""  # no summary: the run never started
    code, out, err = _run_cli(
        ["backblaze", str(data), "--report-dir", str(blocker)], monkeypatch, capsys
    )
    assert "--report-dir" in _one_line_error(code, err)
    assert "is a file, not a folder" in err
    assert out == ""


def test_a_bad_setting_is_one_line_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.settings import load_settings

    monkeypatch.setenv("FOREWARN_SINK_BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match=r"^bad FOREWARN_SINK_BATCH_SIZE '0': "):
        load_settings()
    monkeypatch.delenv("FOREWARN_SINK_BATCH_SIZE")
    monkeypatch.setenv("FOREWARN_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="FOREWARN_LOG_LEVEL 'loud'"):
        load_settings()
