"""Drive libpolygraphy_ext_plugins.so on a GPU without TensorRT: ctypes over tools/harness.cpp, torch tensors.

Used by tests/plugins/test_plugin_gpu.py and bench/plugins.py. The shim is compiled on first use with the host
C++ compiler against the vendored TensorRT headers (it needs no TensorRT library).

    harness = PluginHarness(library_path)
    session = harness.prepare("LayerNorm", {"epsilon": 1e-5, "axis": -1}, [x, gamma, beta], [y])
    session.enqueue([x, gamma, beta], [y])     # on torch's current stream
"""

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
TRT_INCLUDE = TOOLS.parent / "third_party" / "tensorrt" / "include"
PLAN_SOURCE = TOOLS.parent / "plugins" / "row_norm" / "plan.cpp"

# nvinfer1::PluginFieldType and nvinfer1::DataType values.
FIELD_FLOAT32, FIELD_FLOAT64, FIELD_INT32, FIELD_INT64, FIELD_CHAR = 1, 2, 5, 10, 6
PREPARE_STEPS = {
    1: "supportsFormatCombination",
    2: "getOutputDataTypes",
    3: "configurePlugin",
    4: "getWorkspaceSize",
    5: "getFieldsToSerialize",
    6: "createPlugin(kRUNTIME)",
    7: "onShapeChange",
}


class PluginError(RuntimeError):
    pass


def _trt_dtype(tensor):
    import torch

    return {torch.float32: 0, torch.float16: 1, torch.bfloat16: 7}[tensor.dtype]


def _cuda_include() -> Path:
    """The CUDA toolkit's include dir (the TensorRT headers include cuda_runtime_api.h)."""
    candidates = [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for root in filter(None, candidates):
        if (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    raise PluginError("no CUDA headers found (set CUDA_HOME)")


def build_shim(out_dir) -> Path:
    out = Path(out_dir) / "libpgx_harness.so"
    sources = (TOOLS / "harness.cpp", PLAN_SOURCE)
    newest = max(p.stat().st_mtime for p in (*sources, PLAN_SOURCE.with_suffix(".h")))
    if out.exists() and out.stat().st_mtime >= newest:
        return out
    cuda_include = _cuda_include()
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["g++", "-std=c++17", "-O2", "-shared", "-fPIC", "-I", str(TOOLS.parent), "-isystem", str(TRT_INCLUDE),
         "-isystem", str(cuda_include), *map(str, sources), "-o", str(out), "-ldl"],
        check=True,
    )
    return out


def _encode_field(value):
    """A python value, or an explicit (PluginFieldType, ctypes array, length) triple for malformed-field tests."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, bool) or isinstance(value, int):
        return FIELD_INT32, (ctypes.c_int32 * 1)(value), 1
    if isinstance(value, float):
        return FIELD_FLOAT32, (ctypes.c_float * 1)(value), 1
    raw = str(value).encode()
    return FIELD_CHAR, ctypes.create_string_buffer(raw, len(raw)), len(raw)


class Session:
    def __init__(self, lib, handle, plugin):
        self._lib, self._handle, self._plugin = lib, handle, plugin

    @property
    def plugin(self):
        return self._plugin

    def enqueue(self, inputs, outputs, stream=None):
        import torch

        stream = torch.cuda.current_stream().cuda_stream if stream is None else stream
        ins = (ctypes.c_void_p * max(len(inputs), 1))(*[t.data_ptr() for t in inputs])
        outs = (ctypes.c_void_p * max(len(outputs), 1))(*[t.data_ptr() for t in outputs])
        status = self._lib.pgx_enqueue(self._handle, ins, outs, ctypes.c_void_p(stream))
        if status != 0:
            raise PluginError(f"enqueue returned {status}: {self._lib.pgx_last_error().decode()}")

    def __del__(self):
        try:
            self._lib.pgx_release(self._handle)
            self._lib.pgx_destroy(self._plugin)
        except Exception:
            pass


class PluginHarness:
    def __init__(self, library_path, build_dir=None):
        shim = build_shim(build_dir or Path(library_path).parent)
        lib = ctypes.CDLL(str(shim))
        lib.pgx_load.argtypes = [ctypes.c_char_p]
        lib.pgx_last_error.restype = ctypes.c_char_p
        lib.pgx_create.restype = ctypes.c_void_p
        lib.pgx_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_void_p]
        lib.pgx_destroy.argtypes = [ctypes.c_void_p]
        lib.pgx_prepare.restype = ctypes.c_void_p
        lib.pgx_prepare.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.pgx_enqueue.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.pgx_release.argtypes = [ctypes.c_void_p]
        lib.pgx_serialized_fields.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        # A private copy: dlopen of the same path would share the library (and its logger finder) with any
        # TensorRT registry in this process.
        private = Path(build_dir or Path(library_path).parent) / "plugins_for_harness.so"
        shutil.copyfile(library_path, private)
        self.creator_count = lib.pgx_load(str(private).encode())
        if self.creator_count < 0:
            raise PluginError(f"cannot load {library_path}: {lib.pgx_last_error().decode()}")
        self._lib = lib
        self._private = private
        self._tuning = None

    def tune_row_norm_variant(self, variant: str):
        """Force the light row-norm variant `variant` ("light-2", ...) on every later launch where it holds the row,
        or the plan's again for "". Only a tuning build (-DPOLYGRAPHY_EXT_TUNING=ON) exports this."""
        if self._tuning is None:
            tuning = ctypes.CDLL(str(self._private))  # the loaded copy: same handle, same state
            if not hasattr(tuning, "pgxTuneRowNormVariant"):
                raise PluginError("not a tuning build (-DPOLYGRAPHY_EXT_TUNING=ON): no pgxTuneRowNormVariant")
            tuning.pgxTuneRowNormVariant.argtypes = [ctypes.c_char_p]
            self._tuning = tuning
        if self._tuning.pgxTuneRowNormVariant(variant.encode()) != 0:
            raise PluginError(f"unknown light variant {variant!r}")

    def last_error(self) -> str:
        return self._lib.pgx_last_error().decode()

    def create(self, name, fields):
        """The build-phase plugin handle, or None when the creator rejects the fields."""
        encoded = [_encode_field(v) for v in fields.values()]
        n = len(encoded)
        self._keep = encoded
        names = (ctypes.c_char_p * max(n, 1))(*[k.encode() for k in fields])
        types = (ctypes.c_int * max(n, 1))(*[e[0] for e in encoded])
        data = (ctypes.c_void_p * max(n, 1))(*[ctypes.cast(e[1], ctypes.c_void_p) for e in encoded])
        lengths = (ctypes.c_int * max(n, 1))(*[e[2] for e in encoded])
        handle = self._lib.pgx_create(name.encode(), n, names, types, data, lengths)
        return handle or None

    def serialized_fields(self, plugin) -> dict:
        """What getFieldsToSerialize returns, as {name: text}."""
        buffer = ctypes.create_string_buffer(4096)
        size = self._lib.pgx_serialized_fields(plugin, buffer, len(buffer))
        if size < 0:
            raise PluginError("getFieldsToSerialize returned null")
        return dict(line.split("=", 1) for line in buffer.value.decode().splitlines())

    def prepare_descs(self, name, fields, input_descs, output_descs) -> Session:
        """Build + runtime setup from (TensorRT DataType value, shape) pairs; needs no GPU."""
        plugin = self.create(name, fields)
        if plugin is None:
            raise PluginError(f"{name}: creator rejected {fields}: {self.last_error()}")
        descs = list(input_descs) + list(output_descs)
        dtypes = (ctypes.c_int * len(descs))(*[d for d, _ in descs])
        ranks = (ctypes.c_int * len(descs))(*[len(s) for _, s in descs])
        dims = (ctypes.c_int64 * (8 * len(descs)))()
        for i, (_, shape) in enumerate(descs):
            for j, d in enumerate(shape):
                dims[8 * i + j] = d
        status = ctypes.c_int(0)
        handle = self._lib.pgx_prepare(
            plugin, len(input_descs), len(output_descs), dtypes, ranks, dims, ctypes.byref(status)
        )
        if not handle:
            self._lib.pgx_destroy(plugin)
            raise PluginError(f"{name}: {PREPARE_STEPS.get(status.value, status.value)} failed: {self.last_error()}")
        return Session(self._lib, handle, plugin)

    def prepare(self, name, fields, inputs, outputs) -> Session:
        return self.prepare_descs(
            name, fields, [(_trt_dtype(t), tuple(t.shape)) for t in inputs], [(_trt_dtype(t), tuple(t.shape)) for t in outputs]
        )

    def run(self, name, fields, inputs, outputs):
        self.prepare(name, fields, inputs, outputs).enqueue(inputs, outputs)
