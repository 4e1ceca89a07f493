"""Shared fixtures: a real TensorRT builder on CPU (TensorRT-RTX, SM89), GPU/TensorRT markers, CLI runners."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"

# Tests build engines through TensorRT-RTX unless the user explicitly chose full TensorRT.
os.environ.setdefault("POLYGRAPHY_USE_TENSORRT_RTX", "1")

RTX_COMPUTE_CAPABILITY = (8, 9)


def _has_gpu() -> bool:
    if os.environ.get("POLYGRAPHY_EXT_NO_GPU"):
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        pass
    return shutil.which("nvidia-smi") is not None and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True
    ).returncode == 0


HAS_GPU = _has_gpu()


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none found; CI has none)")
    for item in items:
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def trt():
    """The TensorRT module Polygraphy uses (TensorRT-RTX by default in tests), with its parser fix applied."""
    try:
        from polygraphy_ext.plugins import trt_env

        module = trt_env.import_trt()
        trt_env.ensure_rtx_parser_library()
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"TensorRT/TensorRT-RTX not importable: {err}")
    return module


@pytest.fixture(scope="session")
def trt_logger(trt):
    return trt.Logger(trt.Logger.ERROR)


@pytest.fixture
def build_engine(trt, trt_logger):
    """build_engine(onnx_path_or_bytes, plugin_libraries=()) -> serialized engine bytes, built for SM89 on CPU.

    Raises AssertionError with the parser errors when the model does not parse or the engine does not build.
    """

    def build(model, plugin_libraries=()):
        builder = trt.Builder(trt_logger)
        registry = builder.get_plugin_registry()
        for lib in plugin_libraries:
            registry.load_library(str(lib))
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, trt_logger)
        data = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
        # Garbage bytes can decode as an empty protobuf message that "parses"; an empty network is a failure too.
        if not parser.parse(data) or network.num_outputs == 0:
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["network has no outputs"]
            raise AssertionError("ONNX parse failed: " + " | ".join(errors))
        config = builder.create_builder_config()
        if hasattr(trt, "ComputeCapability"):
            config.num_compute_capabilities = 1
            config.set_compute_capability(getattr(trt.ComputeCapability, "SM%d%d" % RTX_COMPUTE_CAPABILITY), 0)
        # Dynamic inputs get a profile spanning 1..(static or 8) in each dynamic dim.
        if any(-1 in tuple(network.get_input(i).shape) for i in range(network.num_inputs)):
            profile = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                inp = network.get_input(i)
                shape = tuple(inp.shape)
                lo = tuple(1 if d == -1 else d for d in shape)
                hi = tuple(8 if d == -1 else d for d in shape)
                profile.set_shape(inp.name, lo, hi, hi)
            config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        assert engine is not None and engine.nbytes > 0, "engine build failed"
        return bytes(engine)

    return build


@pytest.fixture
def run_polygraphy():
    """Run the `polygraphy` console script of this environment in a subprocess; returns CompletedProcess."""
    exe = Path(sys.executable).parent / "polygraphy"

    def run(*args, env=None, check=False, cwd=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(
            [str(exe), *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"polygraphy {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def plugin_library():
    """Path of the built libpolygraphy_ext_plugins.so inside the installed package (skip if not built)."""
    from polygraphy_ext.plugins.library import shipped_library_path

    path = shipped_library_path()
    if path is None:
        pytest.skip("the plugin library was not built (no CUDA compiler at install time)")
    return path
