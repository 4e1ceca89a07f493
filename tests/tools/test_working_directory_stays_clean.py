"""onnxruntime's symbolic shape inference drops sym_shape_infer_temp.onnx + a UUID .data file into the
current directory when it cannot infer every shape; our commands must leave the user's directory as it was."""

import os
import shutil
from pathlib import Path

import onnx

from polygraphy_ext.shape_inference import infer_shapes

FIXTURE = Path(__file__).resolve().parents[1] / "passes" / "fuse_layernorm" / "fixtures" / "vit_block_opset13.onnx"


def test_infer_shapes_leaves_the_working_directory_untouched(tmp_path, monkeypatch):
    shutil.copy(FIXTURE, tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    inferred = infer_shapes("model.onnx")  # a relative path still resolves against the caller's directory
    assert isinstance(inferred, onnx.ModelProto)
    assert len(inferred.graph.value_info) > 0
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    assert Path.cwd() == tmp_path


def test_fuse_ln_writes_only_what_was_asked_for(tmp_path, run_polygraphy):
    shutil.copy(FIXTURE, tmp_path / "model.onnx")
    proc = run_polygraphy("surgeon", "fuse-ln", "model.onnx", "-o", "out/fused.onnx", "--report", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "out", "r.json"]
    assert os.listdir(tmp_path / "out") == ["fused.onnx"]
