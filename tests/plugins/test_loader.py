"""`--plugins` end to end: polygraphy convert/run with real plugin libraries compiled at test time.

Engines are built for SM89 on the CPU through TensorRT-RTX. Every case runs the console script in a
subprocess, because plugin registration is per process and cannot be undone.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
CC = ("--compute-capabilities", "8.9")

_spec = importlib.util.spec_from_file_location("build_testlibs", HERE / "testlibs" / "build_testlibs.py")
build_testlibs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_testlibs)


@pytest.fixture(scope="session")
def libs(trt, tmp_path_factory):
    if build_testlibs.compiler() is None:
        pytest.skip("g++ not found")
    trt_library = build_testlibs.loaded_trt_library()
    if trt_library is None:
        pytest.skip("cannot locate the TensorRT runtime library")
    return build_testlibs.build(tmp_path_factory.mktemp("testlibs"), trt_library)


def plugin_model(path: Path, *plugins, opset=17) -> Path:
    """x -> plugin -> plugin -> ... -> y, each plugin given as (op_type, attrs)."""
    nodes, current = [], "x"
    for i, (op, attrs) in enumerate(plugins):
        out = "y" if i == len(plugins) - 1 else f"t{i}"
        nodes.append(helper.make_node(op, [current], [out], name=f"{op.lower()}_{i}", domain="pgx_test", **attrs))
        current = out
    graph = helper.make_graph(
        nodes,
        "plugins",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("pgx_test", 1)], ir_version=8
    )
    onnx.save(model, str(path))
    return path


IDENTITY = ("PgxTestIdentity", {"plugin_version": "1", "plugin_namespace": "pgx_test"})
OTHER = ("PgxTestOther", {"plugin_version": "1", "plugin_namespace": "pgx_test"})
STATIC = ("PgxTestStaticIdentity", {"plugin_version": "1", "plugin_namespace": "pgx_test"})


def output_of(proc):
    return proc.stdout + proc.stderr


def assert_clean_failure(proc, *fragments, output=None):
    text = output_of(proc)
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("[!]")]
    assert len(errors) == 1, text
    for fragment in fragments:
        assert fragment in errors[0], text
    if output is not None:
        assert not Path(output).exists()


def test_getcreators_library_builds_engine_and_logs_creators(run_polygraphy, libs, tmp_path):
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    engine = tmp_path / "m.engine"
    proc = run_polygraphy("convert", model, "-o", engine, *CC, "--plugins", libs["libpgx_thirdparty.so"])
    assert proc.returncode == 0, output_of(proc)
    assert engine.stat().st_size > 0
    assert (
        f"Loaded plugin library {libs['libpgx_thirdparty.so']} via plugin registry (getCreators); "
        "creators added: PgxTestIdentity version 1 namespace 'pgx_test'"
    ) in output_of(proc)


def test_static_library_linked_to_tensorrt_loads_after_tensorrt(run_polygraphy, libs, tmp_path):
    static = libs["libpgx_static.so"]
    # What Polygraphy's own --plugins (ctypes.CDLL before TensorRT is loaded) runs into:
    early = subprocess.run(
        [sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(static)!r})"], capture_output=True, text=True
    )
    assert early.returncode != 0 and "cannot open shared object file" in early.stderr

    model = plugin_model(tmp_path / "m.onnx", STATIC)
    proc = run_polygraphy("convert", model, "-o", tmp_path / "m.engine", *CC, "--plugins", static)
    assert proc.returncode == 0, output_of(proc)
    assert "via dlopen (static registration); creators added: PgxTestStaticIdentity version 1" in output_of(proc)


def test_directories_and_files_mix(run_polygraphy, libs, tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    os.symlink(libs["libpgx_other.so"], plugin_dir / "libpgx_other.so")
    (plugin_dir / "README.txt").write_text("not a library, and not named like one")
    # Named like a library but not one ("ld.so.cache", a backup): not looked at.
    (plugin_dir / "ld.so.cache").write_text("x")
    (plugin_dir / "libpgx_other.so.bak").write_text("x")
    # A dependency shipped next to the plugin libraries: skipped, not an error.
    os.symlink(libs["libpgx_no_entry_points.so"], plugin_dir / "libvendor_core.so.2")
    model = plugin_model(tmp_path / "m.onnx", IDENTITY, OTHER, STATIC)
    proc = run_polygraphy(
        "convert", model, "-o", tmp_path / "m.engine", *CC,
        "--plugins", plugin_dir, libs["libpgx_thirdparty.so"], libs["libpgx_static.so"],
    )
    text = output_of(proc)
    assert proc.returncode == 0, text
    assert text.count("Loaded plugin library") == 3
    assert f"Plugin directory {plugin_dir}: skipping libvendor_core.so.2 (not TensorRT plugin libraries)" in text


def test_same_library_twice_registers_once(run_polygraphy, libs, tmp_path):
    lib = libs["libpgx_thirdparty.so"]
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    os.symlink(lib, plugin_dir / "libpgx_thirdparty.so")
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    proc = run_polygraphy("convert", model, "-o", tmp_path / "m.engine", *CC, "--plugins", lib, plugin_dir, lib)
    text = output_of(proc)
    assert proc.returncode == 0, text
    assert text.count("Loaded plugin library") == 1
    # Counted as Polygraphy prints them ("[W] ..." lines): with POLYGRAPHY_INTERNAL_CORRECTNESS_CHECKS=1 every
    # warning is also raised as a Python warning, which prints the message again.
    warned = [line for line in text.splitlines() if line.startswith("[W]") and "was given more than once" in line]
    assert len(warned) == 2 and all(line.endswith("loading it once") for line in warned)


@pytest.mark.parametrize(
    "case",
    [
        "missing_path",
        "empty_directory",
        "directory_of_non_plugin_libraries",
        "not_a_library",
        "other_architecture",
        "no_entry_points",
        "no_logger_finder",
        "duplicate_creator",
        "duplicate_static_creator",
        "unknown_version",
        "unknown_namespace",
        "several_missing",
    ],
)
def test_errors_are_one_line_and_write_nothing(run_polygraphy, libs, tmp_path, case):
    engine = tmp_path / "m.engine"
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    third = str(libs["libpgx_thirdparty.so"])
    if case == "missing_path":
        args, expected = [third, tmp_path / "nope.so"], [f"plugin library {tmp_path / 'nope.so'} does not exist"]
    elif case == "empty_directory":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("x")
        args, expected = [tmp_path / "empty"], [f"plugin directory {tmp_path / 'empty'} contains no plugin libraries"]
    elif case == "directory_of_non_plugin_libraries":
        (tmp_path / "deps").mkdir()
        os.symlink(libs["libpgx_no_entry_points.so"], tmp_path / "deps" / "libdep.so")
        args, expected = [tmp_path / "deps"], [
            f"plugin directory {tmp_path / 'deps'} contains no plugin libraries (*.so / *.so.*); what it has "
            "(libdep.so) registers no plugin creators"
        ]
    elif case == "not_a_library":
        (tmp_path / "libfake.so").write_text("INPUT(-lfoo)\n")
        args, expected = [tmp_path / "libfake.so"], ["libfake.so is not a shared library (not an ELF file)"]
    elif case == "other_architecture":
        foreign = build_testlibs.write_foreign_arch_library(tmp_path / "libarm.so")
        args, expected = [foreign], ["libarm.so was built for aarch64 (64-bit) but this machine is x86_64"]
    elif case == "no_entry_points":
        args, expected = [libs["libpgx_no_entry_points.so"]], [
            "is not a TensorRT plugin library: it neither exports getCreators/setLoggerFinder nor registers"
        ]
    elif case == "no_logger_finder":
        args, expected = [libs["libpgx_no_logger_finder.so"]], ["exports getCreators but not setLoggerFinder"]
    elif case == "duplicate_creator":
        args, expected = [third, libs["libpgx_thirdparty_copy.so"]], [
            f"{libs['libpgx_thirdparty_copy.so']} provides plugin creator PgxTestIdentity, which {third} already "
            "registered"
        ]
    elif case == "duplicate_static_creator":
        # TensorRT itself accepts the second static registration of the same creator.
        model = plugin_model(tmp_path / "st.onnx", STATIC)
        args, expected = [libs["libpgx_static.so"], libs["libpgx_static_copy.so"]], [
            f"{libs['libpgx_static_copy.so']} provides plugin creator PgxTestStaticIdentity version 1 namespace "
            f"'pgx_test', which {libs['libpgx_static.so']} already registered; load only one library per creator"
        ]
    elif case == "unknown_version":
        model = plugin_model(tmp_path / "v2.onnx", ("PgxTestIdentity", {"plugin_version": "2", "plugin_namespace": "pgx_test"}))
        args, expected = [third], [
            "PgxTestIdentity version 2 namespace 'pgx_test' (node 'pgxtestidentity_0'; registered only as version 1 "
            f"namespace 'pgx_test' from {third}"
        ]
    elif case == "unknown_namespace":
        model = plugin_model(tmp_path / "ns.onnx", ("PgxTestIdentity", {"plugin_version": "1", "plugin_namespace": "acme"}))
        args, expected = [third], ["PgxTestIdentity version 1 namespace 'acme'", "registered only as version 1 namespace 'pgx_test'"]
    else:
        model = plugin_model(tmp_path / "two.onnx", IDENTITY, OTHER, ("Mystery", {}))
        args, expected = [third], [
            "needs TensorRT plugin(s) that are not registered: PgxTestOther version 1 namespace 'pgx_test' "
            "(node 'pgxtestother_1'; no loaded library provides it); Mystery version 1 namespace ''"
        ]
    proc = run_polygraphy("convert", model, "-o", engine, *CC, "--plugins", *args)
    assert_clean_failure(proc, *expected, output=engine)


SM89_CONFIG_SCRIPT = (
    "def postprocess_config(builder, network, config):\n"
    "    from polygraphy.mod.trt_importer import lazy_import_trt\n"
    "    trt = lazy_import_trt()\n"
    "    config.num_compute_capabilities = 1\n"
    "    config.set_compute_capability(trt.ComputeCapability.SM89, 0)\n"
)


@pytest.mark.parametrize(
    "command",
    [
        ["run", "{model}", "--trt"],
        ["convert", "{model}", "-o", "m.engine", "--compute-capabilities", "8.9"],
        ["inspect", "model", "{model}", "--display-as", "trt"],
        ["debug", "build", "{model}", "--until", "1", "--check", "true"],
    ],
    ids=["run", "convert", "inspect", "debug"],
)
def test_every_tool_checks_the_model_before_parsing(run_polygraphy, tmp_path, command):
    model = plugin_model(tmp_path / "m.onnx", IDENTITY, OTHER)
    proc = run_polygraphy(*(str(model) if arg == "{model}" else arg for arg in command), cwd=tmp_path)
    assert_clean_failure(proc, "PgxTestIdentity version 1 namespace 'pgx_test'", "PgxTestOther version 1")
    assert not (tmp_path / "m.engine").exists()


def test_debug_build_loads_plugins_for_each_iteration(run_polygraphy, libs, tmp_path):
    (tmp_path / "sm89.py").write_text(SM89_CONFIG_SCRIPT)
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    proc = run_polygraphy(
        "debug", "build", model, "--trt-cpps", tmp_path / "sm89.py", "--plugins", libs["libpgx_thirdparty.so"],
        "--until", "2", "--check", "true", cwd=tmp_path,
    )
    assert proc.returncode == 0, output_of(proc)
    assert "Passed: 2/2" in output_of(proc)
    assert output_of(proc).count("Loaded plugin library") == 1


def test_nothing_is_loaded_from_implicit_places(run_polygraphy, libs, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    lib = libs["libpgx_thirdparty.so"]
    os.symlink(lib, workdir / lib.name)
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    engine = tmp_path / "m.engine"
    # A library in the current directory is not picked up for a model that needs it...
    proc = run_polygraphy("convert", model, "-o", engine, *CC, cwd=workdir)
    assert_clean_failure(proc, "PgxTestIdentity version 1 namespace 'pgx_test'", output=engine)
    # ...and a bare name is a path, not a library-path search.
    proc = run_polygraphy(
        "convert", model, "-o", engine, *CC, "--plugins", lib.name, cwd=tmp_path, env={"LD_LIBRARY_PATH": str(lib.parent)}
    )
    assert_clean_failure(proc, f"plugin library {lib.name} does not exist", output=engine)


def test_embed_plugins_puts_the_library_in_the_engine(run_polygraphy, libs, tmp_path):
    lib = libs["libpgx_thirdparty.so"]
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    plain, embedded = tmp_path / "plain.engine", tmp_path / "embedded.engine"
    for engine, extra in ((plain, ()), (embedded, ("--embed-plugins",))):
        proc = run_polygraphy("convert", model, "-o", engine, *CC, "--plugins", lib, *extra)
        assert proc.returncode == 0, output_of(proc)
    library_bytes = lib.read_bytes()
    assert library_bytes in embedded.read_bytes()
    assert library_bytes not in plain.read_bytes()


def test_embed_plugins_without_any_library_is_an_error(run_polygraphy, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model))
    engine = tmp_path / "relu.engine"
    proc = run_polygraphy("convert", model, "-o", engine, *CC, "--embed-plugins")
    assert_clean_failure(proc, "--embed-plugins: no plugin libraries were loaded", output=engine)


def test_gen_script_loads_plugins_the_same_way(run_polygraphy, libs, tmp_path):
    lib = libs["libpgx_thirdparty.so"]
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    # `run` has no --compute-capabilities; a config postprocess script sets SM89 so that the build works on CPU.
    (tmp_path / "sm89.py").write_text(SM89_CONFIG_SCRIPT)
    engine, script = tmp_path / "m.engine", tmp_path / "script.py"
    proc = run_polygraphy(
        "run", model, "--trt", "--plugins", lib, "--embed-plugins", "--trt-cpps", tmp_path / "sm89.py",
        "--save-engine", engine, "--gen-script", script,
    )
    assert proc.returncode == 0, output_of(proc)
    text = script.read_text()
    assert "from polygraphy_ext.plugins.loader import EmbedPluginLibraries, LoadPluginLibraries" in text
    assert "check_onnx_model=True" in text
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    out = ran.stdout + ran.stderr
    assert f"Loaded plugin library {lib} via plugin registry (getCreators)" in out
    assert lib.read_bytes() in engine.read_bytes()  # built and saved before inference (which needs a GPU)


# ------------------------------------------------------------------------------------------------------------
# The shipped library


def layer_norm_model(path: Path) -> Path:
    from polygraphy_ext.plugins.specs import plugin_spec

    spec = plugin_spec("LayerNorm")
    rng = np.random.default_rng(0)
    gamma = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "gamma")
    beta = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "beta")
    node = helper.make_node(
        "LayerNorm", ["x", "gamma", "beta"], ["y"], name="ln", domain=spec.onnx_domain, **spec.onnx_attrs(epsilon=1e-5)
    )
    graph = helper.make_graph(
        [node], "ln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [gamma, beta],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(spec.onnx_domain, 1)], ir_version=8
    )
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("plugins", [("--plugins", "polygraphy_ext"), ()], ids=["by-name", "auto-loaded"])
def test_shipped_library_builds(run_polygraphy, plugin_library, tmp_path, plugins):
    model = layer_norm_model(tmp_path / "fused_plugin.onnx")
    engine = tmp_path / "model.engine"
    proc = run_polygraphy("convert", model, "-o", engine, *CC, *plugins)
    assert proc.returncode == 0, output_of(proc)
    assert engine.stat().st_size > 0
    assert f"Loaded plugin library {plugin_library}" in output_of(proc)


def test_shipped_name_mixes_with_paths_and_directories(run_polygraphy, libs, plugin_library, tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    os.symlink(libs["libpgx_other.so"], plugin_dir / "libpgx_other.so")
    model = plugin_model(tmp_path / "m.onnx", IDENTITY, OTHER)
    proc = run_polygraphy(
        "convert", model, "-o", tmp_path / "m.engine", *CC,
        "--plugins", libs["libpgx_thirdparty.so"], "polygraphy_ext", plugin_dir,
    )
    text = output_of(proc)
    assert proc.returncode == 0, text
    loaded = [line for line in text.splitlines() if line.startswith("[I] Loaded plugin library")]
    assert [line.split()[4] for line in loaded] == [
        str(libs["libpgx_thirdparty.so"]), str(plugin_library), str(plugin_dir / "libpgx_other.so")
    ]


def test_shipped_library_autoload_can_be_turned_off(run_polygraphy, plugin_library, tmp_path):
    model = layer_norm_model(tmp_path / "fused_plugin.onnx")
    engine = tmp_path / "model.engine"
    proc = run_polygraphy("convert", model, "-o", engine, *CC, "--no-autoload-plugins")
    assert_clean_failure(proc, "LayerNorm version 1 namespace 'polygraphy_ext'", "--plugins polygraphy_ext", output=engine)


def test_fused_model_compares_against_original_on_cpu(run_polygraphy, tmp_path):
    """The onnxruntime path runs our plugin nodes through reference ops: fused vs unfused on a CPU."""
    fused = layer_norm_model(tmp_path / "fused.onnx")
    proto = onnx.load(str(fused))
    node = proto.graph.node[0]
    original_node = helper.make_node("LayerNormalization", list(node.input), list(node.output), axis=-1, epsilon=1e-5)
    del proto.graph.node[:]
    proto.graph.node.append(original_node)
    del proto.opset_import[1:]
    onnx.save(proto, str(tmp_path / "original.onnx"))

    ref = tmp_path / "ref.json"
    proc = run_polygraphy("run", tmp_path / "original.onnx", "--onnxrt", "--save-outputs", ref)
    assert proc.returncode == 0, output_of(proc)
    proc = run_polygraphy("run", fused, "--onnxrt", "--load-outputs", ref, "--atol", "1e-5", "--rtol", "1e-5")
    assert proc.returncode == 0, output_of(proc)
    assert "running polygraphy-ext plugin nodes through their CPU reference ops (LayerNorm x1)" in output_of(proc)


def test_fuse_ln_plugin_output_compares_against_original_on_cpu(run_polygraphy, tmp_path):
    """What `fuse-ln --target plugin --skip` writes runs on onnxruntime and matches the unfused model."""
    original = HERE.parent / "passes" / "fuse_layernorm" / "fixtures" / "bert_block_opset14.onnx"
    fused = tmp_path / "fused.onnx"
    run_polygraphy("surgeon", "fuse-ln", original, "-o", fused, "--target", "plugin", "--skip", check=True)
    inputs, ref = tmp_path / "inputs.json", tmp_path / "ref.json"
    run_polygraphy("run", original, "--onnxrt", "--save-inputs", inputs, "--save-outputs", ref, check=True)
    proc = run_polygraphy(
        "run", fused, "--onnxrt", "--load-inputs", inputs, "--load-outputs", ref, "--atol", "1e-5", "--rtol", "1e-5"
    )
    assert proc.returncode == 0, output_of(proc)
    assert "CPU reference ops (LayerNorm x1, SkipLayerNorm x2)" in output_of(proc)


# ------------------------------------------------------------------------------------------------------------
# --gen-script output without --plugins, and failing


def test_gen_script_auto_loads_the_shipped_library(run_polygraphy, plugin_library, tmp_path):
    model = layer_norm_model(tmp_path / "fused_plugin.onnx")
    (tmp_path / "sm89.py").write_text(SM89_CONFIG_SCRIPT)
    engine, script = tmp_path / "m.engine", tmp_path / "script.py"
    run_polygraphy(
        "run", model, "--trt", "--trt-cpps", tmp_path / "sm89.py", "--save-engine", engine, "--gen-script", script,
        check=True,
    )
    assert "LoadPluginLibraries(obj=" in script.read_text()
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    out = ran.stdout + ran.stderr
    assert f"uses polygraphy-ext plugins: loading {plugin_library} automatically" in out, out
    assert engine.stat().st_size > 0, out


def test_gen_script_stops_on_a_missing_plugin_like_the_cli(run_polygraphy, tmp_path):
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    script = tmp_path / "script.py"
    run_polygraphy("run", model, "--trt", "--gen-script", script, check=True)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    out = ran.stdout + ran.stderr
    assert ran.returncode != 0
    errors = [line for line in out.splitlines() if line.startswith("[!]")]
    assert errors == [
        f"[!] {model} needs TensorRT plugin(s) that are not registered: PgxTestIdentity version 1 namespace "
        "'pgx_test' (node 'pgxtestidentity_0'; no loaded library provides it). Load the libraries that provide "
        "them with --plugins."
    ], out


# ------------------------------------------------------------------------------------------------------------
# Engines: a deserialization that fails for want of a plugin creator

# TensorRT-RTX cannot deserialize on a machine without a GPU it supports (CPU, H200), so the runtime's own
# plugin lookup cannot be reached in these tests. This stand-in for Polygraphy's EngineFromBytes does what the
# runtime does for a plan's plugin layer: it asks the real registry for the creator (which logs TensorRT's own
# error when it is missing), then fails the way EngineFromBytes does. Like EngineFromBytes it keeps its plan
# source in `_serialized_engine`.
SIMULATED_DESERIALIZATION = """
import sys
from polygraphy.exception import PolygraphyException
from polygraphy.logger import G_LOGGER
from polygraphy_ext.plugins import loader

name, version, namespace, autoload = sys.argv[1:5]
loader.load_libraries(sys.argv[5:])

def build_plan():
    print("PLAN BUILT")
    return b"plan"

class Deserialize:
    def __init__(self):
        self._serialized_engine = build_plan

    def __call__(self):
        assert self._serialized_engine == b"plan", "the plan is built before deserialization, once"
        creator = loader.import_trt().get_plugin_registry().get_creator(name, version, namespace)
        if creator is None:
            G_LOGGER.critical("Could not deserialize engine. See log for details.")
        return creator.name

try:
    engine = loader.ReportMissingEnginePlugins(Deserialize(), label="m.engine", autoload_shipped=autoload == "1")
    print("ENGINE", engine())
except PolygraphyException:
    sys.exit(1)
"""


def _simulate(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-c", SIMULATED_DESERIALIZATION, *map(str, args)], capture_output=True, text=True,
        cwd=tmp_path,
    )


def test_engine_missing_creator_is_named(libs, tmp_path):
    proc = _simulate(tmp_path, "PgxTestIdentity", "1", "pgx_test", "1")
    assert_clean_failure(
        proc,
        "m.engine could not be deserialized: it uses TensorRT plugin(s) that are not registered: PgxTestIdentity "
        "version 1 namespace 'pgx_test' (no loaded library provides it). Load the libraries that provide them with "
        "--plugins.",
    )
    assert "Cannot find plugin" not in output_of(proc)  # TensorRT's own line is replaced, not printed as well
    # A library with the name under another namespace is pointed out.
    proc = _simulate(tmp_path, "PgxTestIdentity", "1", "acme", "1", libs["libpgx_thirdparty.so"])
    assert_clean_failure(
        proc,
        "PgxTestIdentity version 1 namespace 'acme' (registered only as version 1 namespace 'pgx_test' from "
        f"{libs['libpgx_thirdparty.so']}",
    )
    # Loaded: the stand-in finds its creator and nothing is reported.
    proc = _simulate(tmp_path, "PgxTestIdentity", "1", "pgx_test", "1", libs["libpgx_thirdparty.so"])
    assert proc.returncode == 0 and "ENGINE PgxTestIdentity" in proc.stdout, output_of(proc)


def test_engine_with_shipped_plugins_loads_the_library_and_retries(plugin_library, tmp_path):
    proc = _simulate(tmp_path, "LayerNorm", "1", "polygraphy_ext", "1")
    assert proc.returncode == 0, output_of(proc)
    assert "ENGINE LayerNorm" in proc.stdout
    assert proc.stdout.count("PLAN BUILT") == 1  # the retry deserializes the same plan, it does not rebuild
    assert f"m.engine uses polygraphy-ext plugins: loading {plugin_library} automatically" in output_of(proc)

    proc = _simulate(tmp_path, "LayerNorm", "1", "polygraphy_ext", "0")
    assert_clean_failure(
        proc, "LayerNorm version 1 namespace 'polygraphy_ext' (provided by polygraphy-ext's shipped library "
        "(--plugins polygraphy_ext))"
    )


def test_engine_loading_is_wrapped_and_other_failures_pass_through(run_polygraphy, libs, tmp_path):
    lib = libs["libpgx_thirdparty.so"]
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    engine = tmp_path / "m.engine"
    run_polygraphy("convert", model, "-o", engine, *CC, "--plugins", lib, check=True)
    script = tmp_path / "script.py"
    run_polygraphy("run", engine, "--trt", "--plugins", lib, "--gen-script", script, check=True)
    assert f"ReportMissingEnginePlugins(deserialize_engine, label='{engine}')" in script.read_text()

    proc = run_polygraphy("inspect", "model", engine, "--plugins", lib)
    text = output_of(proc)
    assert "Traceback" not in text and "could not be deserialized: it uses" not in text, text
    if proc.returncode != 0:  # no GPU TensorRT-RTX runs on: TensorRT's own reason stays visible
        assert [line for line in text.splitlines() if line.startswith("[!]")] == [
            "[!] Could not deserialize engine. See log for details."
        ], text
        assert any(line.startswith("[E]") for line in text.splitlines()), text


# ------------------------------------------------------------------------------------------------------------
# TensorRT-RTX's parser abort, end to end


def _rtx_wheel_copy_without_link(root: Path) -> Path:
    """A tensorrt_rtx_libs package under ``root`` that links to the installed libraries but lacks the
    unversioned libtensorrt_rtx.so, as the wheel ships it. Put ``root`` first on PYTHONPATH to use it."""
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if os.environ.get("POLYGRAPHY_USE_TENSORRT_RTX") != "1" or spec is None:
        pytest.skip("needs the TensorRT-RTX wheel")
    installed = Path(list(spec.submodule_search_locations)[0])
    package = root / "tensorrt_rtx_libs"
    package.mkdir(parents=True)
    (package / "__init__.py").write_bytes((installed / "__init__.py").read_bytes())
    for lib in installed.glob("*.so.*"):
        os.symlink(lib, package / lib.name)
    return package


def test_rtx_parser_abort_is_prevented(run_polygraphy, libs, tmp_path):
    package = _rtx_wheel_copy_without_link(tmp_path / "site")
    env = {"PYTHONPATH": str(tmp_path / "site"), "POLYGRAPHY_EXT_DISABLE_HOOK": "1"}
    model = plugin_model(tmp_path / "m.onnx", IDENTITY)
    lib = libs["libpgx_thirdparty.so"]
    # The premise: parsing a plugin node with the creator registered aborts the process without the link.
    plain = subprocess.run(
        [sys.executable, "-c", (
            "import tensorrt_rtx as trt\n"
            "logger = trt.Logger(trt.Logger.ERROR)\n"
            "builder = trt.Builder(logger)\n"
            f"trt.get_plugin_registry().load_library({str(lib)!r})\n"
            "parser = trt.OnnxParser(builder.create_network(0), logger)\n"
            f"parser.parse(open({str(model)!r}, 'rb').read())\n"
        )],
        capture_output=True, text=True, env={**os.environ, **env},
    )
    if plain.returncode == 0:
        pytest.skip("this TensorRT-RTX parser no longer aborts without libtensorrt_rtx.so")
    assert plain.returncode < 0 or plain.returncode == 134, plain.stderr
    assert not (package / "libtensorrt_rtx.so").exists()

    del env["POLYGRAPHY_EXT_DISABLE_HOOK"]
    proc = run_polygraphy("convert", model, "-o", tmp_path / "m.engine", *CC, "--plugins", lib, env=env)
    assert proc.returncode == 0, output_of(proc)
    assert os.readlink(package / "libtensorrt_rtx.so") == "libtensorrt_rtx.so.1"
