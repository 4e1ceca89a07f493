"""`polygraphy surgeon fuse-gelu` and `polygraphy run --fuse-gelu`: the thin CLI over the pass."""

import json

import onnx
from gelu_chains import cast_wrapped, erf_torchscript, tanh_gelu_new, with_bias
from gelu_checks import op_types
from test_fuse_gelu_rejections import _model_with_spatial_batchnorm


def _one_line_error(proc):
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("[!]")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return errors[0]


def test_native_with_report_and_check(tmp_path, run_polygraphy):
    src = tmp_path / "m.onnx"
    model, _ = with_bias(erf_torchscript, (16,))
    onnx.save(model, src)
    before = src.read_bytes()
    proc = run_polygraphy("surgeon", "fuse-gelu", src, "-o", tmp_path / "out.onnx", "--report", tmp_path / "r.json",
                          "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fuse-gelu (native): fused 1 of 1" in proc.stdout + proc.stderr and "--check: outputs match" in proc.stdout + proc.stderr
    fused = onnx.load(tmp_path / "out.onnx")
    assert op_types(fused) == ["Add", "Gelu"] and fused.opset_import[0].version == 20
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num_fused"] == 1 and report["candidates"][0]["pattern"] == "gelu-erf"
    assert src.read_bytes() == before


def test_plugin_target_folds_the_bias_and_checks_through_the_cpu_reference(tmp_path, run_polygraphy):
    src = tmp_path / "m.onnx"
    onnx.save(cast_wrapped(tanh_gelu_new), src)
    proc = run_polygraphy("surgeon", "fuse-gelu", src, "-o", tmp_path / "out.onnx", "--target", "plugin", "--check",
                          "--check-rtol", "5e-3", "--check-atol", "2e-3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert op_types(onnx.load(tmp_path / "out.onnx")) == ["BiasGelu"]


def test_bad_requests_are_one_line_errors_and_write_nothing(tmp_path, run_polygraphy):
    src = tmp_path / "m.onnx"
    onnx.save(_model_with_spatial_batchnorm(), src)
    out = tmp_path / "out.onnx"
    line = _one_line_error(run_polygraphy("surgeon", "fuse-gelu", src, "-o", out))
    assert "needs opset 20" in line and "BatchNormalization" in line
    line = _one_line_error(run_polygraphy("surgeon", "fuse-gelu", src, "-o", out, "--no-bias"))
    assert "--no-bias needs --target plugin" in line
    line = _one_line_error(run_polygraphy("surgeon", "fuse-gelu", tmp_path / "missing.onnx", "-o", out))
    assert "does not exist" in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_run_routes_the_pass_into_tensorrt_only(tmp_path, run_polygraphy):
    src = tmp_path / "m.onnx"
    onnx.save(with_bias(erf_torchscript, (16,))[0], src)
    proc = run_polygraphy("run", src, "--onnxrt", "--trt", "--fuse-gelu", "--fuse-gelu-target", "plugin",
                          "--gen-script", tmp_path / "s.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = (tmp_path / "s.py").read_text()
    assert "FuseGelu(load_onnx, target='plugin', infer_shapes=True)" in script
    assert f"SessionFromOnnx('{src}')" in script  # onnxruntime keeps the original
    line = _one_line_error(run_polygraphy("run", src, "--onnxrt", "--fuse-gelu-target", "plugin"))
    assert "need --fuse-gelu" in line


def test_surgeon_lists_the_subtool(run_polygraphy):
    proc = run_polygraphy("surgeon", "-h")
    assert "fuse-gelu" in proc.stdout
