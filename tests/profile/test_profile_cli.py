"""`polygraphy rank-profile` through the real console script: happy paths and every bad input it handles."""

import csv
import io
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ANSI_ESCAPE = "\x1b["


def rank_profile(run_polygraphy, *args, env=None):
    return run_polygraphy("rank-profile", *args, env=env)


def assert_one_line_error(proc, message):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, proc.stderr
    assert message in error_lines[0]


def test_table_to_stdout(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--top", "5")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Rank  Time %  Cum %  Avg ms  Median ms  Family" in out
    assert "(26 more layers)" in out and "(2 layers with zero time)" in out
    assert "16 layers make 90% of the time (of 31 timed layers, 2 with zero time)" in out
    assert "Note: 2 Myelin region(s)" in out
    assert ANSI_ESCAPE not in out  # not a TTY: plain text
    first_row = next(line for line in out.splitlines() if line.lstrip().startswith("1 "))
    assert "24.8%" in first_row and "Myelin region" in first_row and "…" in first_row


def test_color_when_forced(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--top", "3", env={"FORCE_COLOR": "1"})
    assert proc.returncode == 0
    assert ANSI_ESCAPE in proc.stdout
    plain = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--top", "3", "--log-format", "no-colors",
                         env={"FORCE_COLOR": "1"})
    assert plain.returncode == 0 and ANSI_ESCAPE not in plain.stdout


def test_json_and_csv_outputs_hold_full_names(run_polygraphy, tmp_path):
    out_json = tmp_path / "ranked.json"
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--layer-info",
                        FIXTURES / "bert_before.layers.json", "-o", out_json)
    assert proc.returncode == 0, proc.stderr
    assert f"Saved json report to {out_json}" in proc.stdout
    data = json.loads(out_json.read_text())
    assert len(data["layers"]) == 33 and data["layers_for_90_percent"] == 16
    assert data["layers"][0]["name"].endswith("/encoder/layer.0/attention/self/Softmax]}")
    assert data["layers"][0]["layer_type"] == "Myelin"
    assert data["layer_info"]["coverage"] == 1.0

    out_csv = tmp_path / "ranked.csv"
    assert rank_profile(run_polygraphy, FIXTURES / "unescaped_names.json", "-o", out_csv).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [row["name"] for row in rows] == ['/model/"quoted"/Conv', "C:\\models\\net\\bias_add", "plain/Relu"]
    assert float(rows[0]["share"]) == pytest.approx(2 / 3, rel=1e-4)


def test_group_by_markdown_and_explain(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "trt10_myelin_kernels.json", "--group-by", "family",
                        "--format", "markdown", "--explain")
    assert proc.returncode == 0, proc.stderr
    assert "| Rank | Time % |" in proc.stdout
    assert "| LayerNorm | 2 | 8.6% |" in proc.stdout
    assert "myelin-kernel:layernorm: Myelin kernel fuses Mean + Sqrt" in proc.stdout


def test_group_by_csv_holds_groups(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--group-by", "prefix:2", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    groups = {row["group"]: row for row in csv.DictReader(io.StringIO(proc.stdout))}
    assert groups["encoder/layer.0"]["layers"] == groups["encoder/layer.1"]["layers"]


def test_run_selects_a_concatenated_profile(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "concatenated_runs.json", "--run", "1", "--format", "json")
    data = json.loads(proc.stdout)
    assert (data["run"], data["runs_in_file"], data["count"]) == (1, 3, 10)
    assert any("ranked run 1 of" in note or "ranked run 1 " in note for note in data["notes"])


def test_diff(run_polygraphy):
    proc = rank_profile(
        run_polygraphy, FIXTURES / "bert_after.json", "--layer-info", FIXTURES / "bert_after.layers.json",
        "--diff", FIXTURES / "bert_before.json", "--diff-layer-info", FIXTURES / "bert_before.layers.json",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == (
        "after is 1.12x faster (3.838 -> 3.414 ms per iteration); LayerNorm family -0.42 ms"
    )
    assert "Matched 15 by name, 1 by normalized name, 1 by layer-info signature; 4 added" in proc.stdout


def test_plot_writes_a_png(run_polygraphy, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "profile.png"
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(run_polygraphy, tmp_path):
    # A matplotlib that fails to import, first on the path: what a machine without the plot extra sees.
    fake = tmp_path / "no_matplotlib" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    import os

    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))}
    png, report = tmp_path / "p.png", tmp_path / "r.csv"
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--plot", png, "-o", report, env=env)
    assert_one_line_error(proc, "--plot needs matplotlib, which is not installed: pip install 'polygraphy-ext[plot]'")
    assert not png.exists() and not report.exists()


def _bad_inputs(tmp_path):
    def make(name, text):
        path = tmp_path / name
        path.write_text(text)
        return path

    return [
        ([tmp_path / "missing.json"], "missing.json: no such file"),
        ([make("empty.json", "")], "empty.json: file is empty"),
        ([make("text.json", "hello world")], "text.json: not valid JSON"),
        ([make("object.json", '{"count": 3}')], "found an object"),
        ([make("numbers.json", "[1, 2]")], 'record 1 is a number, expected an object with "name" and "timeMs"'),
        ([make("noname.json", '[{"count":1},{"timeMs":1}]')], 'record 1 has no "name" string'),
        ([make("notime.json", '[{"count":1},{"name":"a"}]')], "record 1 ('a') has no \"timeMs\" or \"averageMs\""),
        ([make("negative.json", '[{"count":1},{"name":"a","timeMs":-2}]')], "timeMs is negative (-2)"),
        ([make("nan.json", '[{"count":1},{"name":"a","timeMs":nan}]')], "record 1 ('a'): timeMs is NaN"),
        (
            [FIXTURES / "trt7_resnet.prof", "--layer-info", make("other.json", '{"Layers": ["x"]}')],
            "other.json: matches none of the 7 layers",
        ),
        ([FIXTURES / "bert_before.json", "--max-file-mb", "0.001"], "larger than the 1048 bytes limit"),
        ([FIXTURES / "bert_before.json", "--group-by", "tactic"], "--group-by tactic needs --layer-info"),
        ([FIXTURES / "bert_before.json", "--run", "2"], "--run 2 is out of range"),
    ]


def test_bad_inputs_give_one_line_errors_and_no_output(run_polygraphy, tmp_path):
    for index, (args, message) in enumerate(_bad_inputs(tmp_path)):
        out = tmp_path / f"out{index}.json"
        proc = rank_profile(run_polygraphy, *args, "-o", out)
        assert_one_line_error(proc, message)
        assert not out.exists()


def test_gigabyte_file_is_refused(run_polygraphy, tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as stream:
        stream.truncate(1024**3)
    proc = rank_profile(run_polygraphy, huge)
    assert_one_line_error(proc, "file is 1024.0 MiB, larger than the 256.0 MiB limit")


def test_output_never_overwrites_an_input(run_polygraphy, tmp_path):
    profile = tmp_path / "prof.json"
    original = (FIXTURES / "no_count.json").read_text()
    profile.write_text(original)
    proc = rank_profile(run_polygraphy, profile, "-o", profile)
    assert_one_line_error(proc, "refusing to overwrite an input file")
    assert profile.read_text() == original
