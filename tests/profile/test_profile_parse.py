"""Reading every profile variant trtexec writes, and refusing bad input with one precise message."""

import math
import os
import threading
from pathlib import Path

import pytest
from trtexec_format import Row, profile_text

from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.parse import load_profile

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def write(tmp_path, text, name="prof.json"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_trt84_profile_with_median_and_count():
    profile = load_profile(FIXTURES / "bert_before.json")
    assert profile.count == 200
    assert profile.has_median
    assert len(profile.layers) == 33
    gather = profile.layers[1]
    assert gather.name == "/embeddings/word_embeddings/Gather"
    assert gather.time_ms == pytest.approx(4.2)
    assert gather.average_ms == pytest.approx(0.021)
    assert gather.median_ms == pytest.approx(0.02058)
    assert profile.layers[0].time_ms == 0.0  # zero-time rows are kept, not dropped


def test_trt7_profile_without_median_and_any_extension():
    profile = load_profile(FIXTURES / "trt7_resnet.prof")
    assert profile.count == 500
    assert not profile.has_median
    assert all(layer.median_ms is None for layer in profile.layers)
    assert profile.layers[0].name.startswith("(Unnamed Layer* 0) [Convolution]")


def test_profile_without_count_element():
    profile = load_profile(FIXTURES / "no_count.json")
    assert profile.count is None
    assert len(profile.layers) == 7
    assert profile.layers[0].average_ms == pytest.approx(0.182)


def test_unescaped_quotes_and_backslashes_are_read_verbatim():
    profile = load_profile(FIXTURES / "unescaped_names.json")
    assert [layer.name for layer in profile.layers] == ['/model/"quoted"/Conv', "C:\\models\\net\\bias_add", "plain/Relu"]
    assert profile.repaired_names == 2


def test_backslash_that_happens_to_be_a_json_escape_is_still_verbatim(tmp_path):
    # "net\bias" is valid JSON (\b = backspace) but trtexec meant a backslash.
    path = write(tmp_path, profile_text([Row("net\\bias", 1.0), Row("x", 1.0)], count=2))
    assert load_profile(path).layers[0].name == "net\\bias"


def test_raw_control_characters_in_names_are_kept(tmp_path):
    # TensorRT 8.6+ joins fused names with \x1e; trtexec writes it raw, which strict JSON forbids.
    names = ["/a/Conv\x1e/a/Relu", "tab\there", "\x1f/b/MatMul"]
    path = write(tmp_path, profile_text([Row(name, 1.0) for name in names], count=3))
    profile = load_profile(path)
    assert [layer.name for layer in profile.layers] == names
    assert profile.repaired_names == 0


def test_control_characters_survive_the_repair_pass(tmp_path):
    # A quote elsewhere forces the line-by-line repair, which must not split lines at \x1e (splitlines does).
    names = ['/q/"x"/Conv', "/a/Conv\x1e/a/Relu", "/b/Add\x85/b/Mul"]
    path = write(tmp_path, profile_text([Row(name, 1.0) for name in names], count=3))
    profile = load_profile(path)
    assert [layer.name for layer in profile.layers] == names
    assert profile.repaired_names == 1


def test_concatenated_runs_default_to_the_last_and_run_picks_one():
    last = load_profile(FIXTURES / "concatenated_runs.json")
    assert (last.run_index, last.run_total, last.count) == (3, 3, 30)
    first = load_profile(FIXTURES / "concatenated_runs.json", run=1)
    assert first.count == 10 and first.layers[0].average_ms == pytest.approx(9.99)
    assert load_profile(FIXTURES / "concatenated_runs.json", run=-2).count == 20


def test_nan_percentage_from_an_all_zero_profile_is_tolerated(tmp_path):
    path = write(tmp_path, profile_text([Row("a", 0.0), Row("b", 0.0)], count=5))
    assert "nan" in path.read_text()
    profile = load_profile(path)
    assert [layer.percentage for layer in profile.layers] == [None, None]


def test_integer_times_are_read_as_floats(tmp_path):
    # trtexec prints a zero as "0"; one numeric type keeps sorting fast and arithmetic overflow-free.
    path = write(tmp_path, '[{"count": 2}, {"name": "a", "timeMs": 0, "averageMs": 0, "medianMs": 0, "percentage": 0},'
                           ' {"name": "b", "timeMs": 4, "averageMs": 2, "medianMs": 2, "percentage": 100}]')
    for layer in load_profile(path).layers:
        assert all(type(value) is float for value in (layer.time_ms, layer.average_ms, layer.median_ms, layer.percentage))


def test_average_only_records_derive_the_total_from_count(tmp_path):
    path = write(tmp_path, '[{"count": 4}, {"name": "a", "averageMs": 0.5}]')
    layer = load_profile(path).layers[0]
    assert layer.time_ms == pytest.approx(2.0) and layer.average_ms == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "file is empty"),
        ("   \n", "file is empty"),
        ("this is not json", "not valid JSON"),
        ('{"count": 3}', "expected a JSON array of layer records (trtexec --exportProfile), found an object"),
        ("[1, 2, 3]", 'record 1 is a number, expected an object with "name" and "timeMs"'),
        ('[{"count": 3}]', "the profile holds no layer records"),
        ('[{"count": 0}, {"name": "a", "timeMs": 1}]', "count element must be a positive integer"),
        ('[{"count": 3}, {"timeMs": 1, "averageMs": 0.3}]', 'record 1 has no "name" string'),
        ('[{"count": 3}, {"name": "a", "percentage": 100}]', "record 1 ('a') has no \"timeMs\" or \"averageMs\""),
        ('[{"count": 3}, {"name": "a", "timeMs": -1, "averageMs": 0.3}]', "record 1 ('a'): timeMs is negative (-1)"),
        ('[{"count": 3}, {"name": "a", "timeMs": NaN, "averageMs": 0.3}]', "record 1 ('a'): timeMs is NaN"),
        ('[{"count": 3}, {"name": "a", "timeMs" : nan, "averageMs": 0.3}]', "record 1 ('a'): timeMs is NaN"),
        ('[{"count": 3}, {"name": "a", "timeMs": "1.0"}]', "record 1 ('a'): timeMs is a string, expected a number"),
        ('[{"count": 3}, {"name": "a", "timeMs": 1}, {"name": "b", "timeMs": 1, "medianMs": Infinity}]',
         "record 2 ('b'): medianMs is infinite"),
        ('[{"count": 3}, {"name": "a", "timeMs": true}]', "record 1 ('a'): timeMs is a boolean, expected a number"),
        ('[{"count": 3}, {"name": "a", "timeMs": 1' + "0" * 400 + "}]",
         "record 1 ('a'): timeMs is too large (an integer of 401 digits)"),
        ('[{"count": 3}, {"name": "a", "timeMs": 1' + "0" * 5000 + "}]", "holds a number with thousands of digits"),
        ('[{"count": Infinity}, {"name": "a", "timeMs": 1}]', "count element must be a positive integer (below 2**53), got inf"),
        ('[{"count": 2.5}, {"name": "a", "timeMs": 1}]', "count element must be a positive integer (below 2**53), got 2.5"),
        ('[{"count": 1' + "0" * 400 + '}, {"name": "a", "timeMs": 1}]', "got an integer of 401 digits"),
    ],
)
def test_bad_profiles_give_one_line_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ProfileError, match="no such file"):
        load_profile(tmp_path / "missing.json")
    with pytest.raises(ProfileError, match="is a directory"):
        load_profile(tmp_path)


def test_run_out_of_range():
    with pytest.raises(ProfileError, match=r"--run 4 is out of range, the file holds 3 profile run\(s\)"):
        load_profile(FIXTURES / "concatenated_runs.json", run=4)


def test_size_limit_refuses_before_reading(tmp_path):
    path = write(tmp_path, profile_text([Row("a", 1.0)] * 50, count=2))
    with pytest.raises(ProfileError, match="larger than the 100 bytes limit"):
        load_profile(path, max_bytes=100)
    assert load_profile(path, max_bytes=path.stat().st_size).layers


def test_a_pipe_is_read_no_further_than_the_limit(tmp_path):
    # A FIFO reports size 0, so only the capped read protects against an endless or huge stream.
    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    written = []

    def feed():
        try:
            with open(fifo, "w") as stream:
                stream.write(profile_text([Row(f"layer{i}", 1.0) for i in range(200)], count=2))
                written.append(True)
        except BrokenPipeError:
            written.append(False)  # the reader stopped early, as it should

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with pytest.raises(ProfileError, match="more than 1000 bytes of data, the limit for a profile"):
            load_profile(fifo, max_bytes=1000)
    finally:
        writer.join(timeout=30)
    assert written  # the writer finished (no deadlock)


def test_a_sparse_gigabyte_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as stream:
        stream.truncate(1024**3)  # sparse: no disk space, no time
    with pytest.raises(ProfileError, match=r"file is 1024.0 MiB, larger than the 256.0 MiB limit"):
        load_profile(path)


def test_numbers_are_finite_floats():
    for layer in load_profile(FIXTURES / "trt10_myelin_kernels.json").layers:
        assert math.isfinite(layer.time_ms) and layer.time_ms >= 0
