"""`polygraphy rank-profile` through the real console script: happy paths and every bad input it handles."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polygraphy_ext.profile.render import color_enabled

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ANSI_ESCAPE = "\x1b["
ANSI_RED = "\x1b[31m"
POLYGRAPHY = Path(sys.executable).parent / "polygraphy"


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


def _on_a_terminal(*args, **env):
    """Run rank-profile with stdout and stderr on a pseudo-terminal; returns (exit status, what it showed)."""
    import pty

    full_env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    full_env.update(env)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(POLYGRAPHY), "rank-profile", *map(str, args)],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=full_env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def test_colors_on_a_terminal_and_not_with_no_color():
    status, shown = _on_a_terminal(FIXTURES / "bert_before.json", "--top", "3")
    assert status == 0, shown
    first_row = next(line for line in shown.splitlines() if "24.8%" in line)
    assert first_row.startswith(ANSI_RED)  # >= 10% of the time
    status, shown = _on_a_terminal(FIXTURES / "bert_before.json", "--top", "3", NO_COLOR="1")
    assert status == 0 and "24.8%" in shown and ANSI_ESCAPE not in shown


@pytest.mark.parametrize(
    "environ, tty, expected",
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # no-color.org: only a non-empty value counts
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": ""}, False, True),
        ({"FORCE_COLOR": "0"}, True, False),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, True),
    ],
)
def test_color_decision(environ, tty, expected):
    class Stream:
        def isatty(self):
            return tty

    assert color_enabled(Stream(), environ) is expected


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
    assert groups["encoder/layer.0"]["layers"] == groups["encoder/layer.1"]["layers"] == "12"


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


def test_diff_as_json_and_csv(run_polygraphy, tmp_path):
    args = [FIXTURES / "bert_after.json", "--layer-info", FIXTURES / "bert_after.layers.json",
            "--diff", FIXTURES / "bert_before.json", "--diff-layer-info", FIXTURES / "bert_before.layers.json"]
    out_json = tmp_path / "diff.json"
    proc = rank_profile(run_polygraphy, *args, "-o", out_json)
    assert proc.returncode == 0, proc.stderr
    assert "after is 1.12x faster" in proc.stdout  # the verdict is logged next to "Saved json report"
    data = json.loads(out_json.read_text())
    assert data["speedup"] == pytest.approx(3.838 / 3.414)
    assert data["matched_by"] == {"name": 15, "normalized": 1, "signature": 1, "added": 4, "removed": 16}
    renamed = next(d for d in data["layers"] if d["matched_by"] == "normalized")
    assert (renamed["before_name"], renamed["name"], renamed["ratio"]) == (
        "/pooler/dense/Gemm_12", "/pooler/dense/Gemm_13", pytest.approx(1.0))
    layernorm = next(f for f in data["families"] if f["family"] == "layernorm")
    assert (layernorm["delta_ms"], layernorm["share_of_change"]) == (pytest.approx(-0.424), pytest.approx(1.0))

    proc = rank_profile(run_polygraphy, *args, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 15 + 1 + 1 + 4 + 16
    removed = [row for row in rows if row["matched_by"] == "removed"]
    assert len(removed) == 16 and all(row["after_ms"] == "0.0" and row["ratio"] == "0.0" for row in removed)


def test_diff_run_picks_the_before_run(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "concatenated_runs.json", "--diff",
                        FIXTURES / "concatenated_runs.json", "--diff-run", "1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    # Run 1 was edited to 9.99 ms for its first layer; the last run has 0.182 ms.
    first = next(d for d in data["layers"] if d["name"].startswith("(Unnamed Layer* 0)"))
    assert (first["before_ms"], first["after_ms"]) == (pytest.approx(9.99), pytest.approx(0.182))
    assert any("before: the file holds 3 profile runs; ranked run 1" in note for note in data["notes"])


def test_legacy_terminal_encoding_gets_replacement_characters_not_a_traceback(run_polygraphy):
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--top", "2", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    first_row = next(line for line in proc.stdout.splitlines() if line.lstrip().startswith("1 "))
    assert "{ForeignNode[/encoder/layer.0?yer.0/attention/self/Softmax]}" in first_row


def test_control_characters_in_names_are_shown_visibly(run_polygraphy, tmp_path):
    path = tmp_path / "p.json"
    path.write_text('[\n  { "count" : 1 }\n, { "name" : "/a/Conv\x1e/a/Relu", "timeMs" : 2, "averageMs" : 2 }\n]\n')
    proc = rank_profile(run_polygraphy, path)
    assert proc.returncode == 0, proc.stderr
    assert "/a/Conv+/a/Relu" in proc.stdout and "\x1e" not in proc.stdout
    out = tmp_path / "p.out.json"
    assert rank_profile(run_polygraphy, path, "-o", out).returncode == 0
    assert json.loads(out.read_text())["layers"][0]["name"] == "/a/Conv\x1e/a/Relu"  # exact in json


def test_plot_writes_a_png(run_polygraphy, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "profile.png"
    proc = rank_profile(run_polygraphy, FIXTURES / "bert_before.json", "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Saved plot to {png}" in proc.stdout


def _bar_chart(axis):
    labels = [label.get_text() for label in axis.get_yticklabels()]
    return dict(zip(labels, (bar.get_width() for bar in axis.patches)))


def test_plot_shows_the_top_layers_and_every_family():
    pytest.importorskip("matplotlib")
    from polygraphy_ext.profile import analyze_profile, group
    from polygraphy_ext.profile.plot import build_figure

    ranking = analyze_profile(FIXTURES / "bert_before.json").ranking
    figure = build_figure(ranking, top=5, name_width=200)
    try:
        layers_axis, family_axis = figure.axes
        layers = _bar_chart(layers_axis)
        assert list(layers) == [f"{row.rank}. {row.layer.name}" for row in ranking.rows[:5]]
        assert list(layers.values()) == pytest.approx([row.share * 100 for row in ranking.rows[:5]])
        families = _bar_chart(family_axis)
        assert families == pytest.approx({g.key: g.share * 100 for g in group(ranking, "family")})
        assert list(families)[0] == "Myelin region"
    finally:
        import matplotlib.pyplot

        matplotlib.pyplot.close(figure)


def test_plot_keeps_layers_whose_shortened_names_collide(tmp_path):
    pytest.importorskip("matplotlib")
    from trtexec_format import Row, profile_text

    from polygraphy_ext.profile import analyze_profile
    from polygraphy_ext.profile.plot import build_figure

    # Equal once shortened in the middle: they must still be two bars, not one stacked category.
    names = ["/model/" + "a" * 80 + "/block0/" + "z" * 80, "/model/" + "a" * 80 + "/block1/" + "z" * 80]
    path = tmp_path / "p.json"
    path.write_text(profile_text([Row(names[0], 2.0), Row(names[1], 1.0)], count=1))
    figure = build_figure(analyze_profile(path).ranking, name_width=30)
    try:
        layers_axis = figure.axes[0]
        assert len(layers_axis.patches) == 2
        assert [tick for tick in layers_axis.get_yticks()] == [0, 1]
    finally:
        import matplotlib.pyplot

        matplotlib.pyplot.close(figure)


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
