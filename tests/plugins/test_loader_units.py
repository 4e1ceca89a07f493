"""The loader's pure parts: ELF inspection, the model's plugin check, the onnxruntime reference ops, RTX fix."""

import importlib.util
import math
import struct
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from polygraphy_ext.plugins import discovery, elf, engine_failure, library, trt_env
from polygraphy_ext.plugins.model_check import (
    PluginKey,
    PluginUse,
    describe_missing,
    describe_plugins,
    missing_plugins,
    plugin_uses,
)
from polygraphy_ext.plugins.ort_reference import has_plugin_nodes, lower_plugin_nodes
from polygraphy_ext.plugins.specs import plugin_spec

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("build_testlibs", HERE / "testlibs" / "build_testlibs.py")
build_testlibs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_testlibs)

# ------------------------------------------------------------------------------------------------------------
# ELF


def _compile(tmp_path, name, *flags):
    if build_testlibs.compiler() is None:
        pytest.skip("g++ not found")
    src = tmp_path / "f.c"
    src.write_text('int exported_fn(void) { return 1; }\nextern int imported_fn(void);\nint use(void) { return imported_fn(); }\n')
    out = tmp_path / name
    subprocess.run(["gcc", *flags, str(src), "-o", str(out)], check=True, capture_output=True)
    return out


def test_elf_reads_exports_imports_and_needed(tmp_path):
    info = elf.read_shared_library(_compile(tmp_path, "libf.so", "-shared", "-fPIC", "-Wl,--no-as-needed", "-lm"))
    assert info.machine == elf.host_machine()
    assert {"exported_fn", "use"} <= info.exported
    assert "imported_fn" in info.imported and "imported_fn" not in info.exported
    assert "libm.so.6" in info.needed


def test_elf_rejects_object_files(tmp_path):
    obj = _compile(tmp_path, "f.o", "-c", "-fPIC")
    with pytest.raises(elf.NotALoadableLibrary, match=r"f\.o is not a shared library \(ELF a relocatable object"):
        elf.read_shared_library(obj)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an ELF file"),
        (b"#!/bin/sh\n", "not an ELF file"),
        (b"\x7fELF\x07\x01", "corrupt ELF file"),
        (b"\x7fELF\x02\x01\x01" + bytes(9), "truncated or corrupt"),
    ],
)
def test_elf_rejects_garbage(tmp_path, content, message):
    path = tmp_path / "libx.so"
    path.write_bytes(content)
    with pytest.raises(elf.NotALoadableLibrary, match=message):
        elf.read_shared_library(path)


def test_elf_names_the_foreign_architecture(tmp_path):
    foreign = build_testlibs.write_foreign_arch_library(tmp_path / "libppc.so", e_machine=21)
    with pytest.raises(elf.NotALoadableLibrary, match=r"built for ppc64 \(64-bit\) but this machine is x86_64"):
        elf.read_shared_library(foreign)


def test_elf_rejects_32_bit_library_of_the_same_family(tmp_path):
    path = tmp_path / "lib32.so"
    header = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8) + struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0)
    path.write_bytes(header)
    with pytest.raises(elf.NotALoadableLibrary, match=r"built for x86 \(32-bit\)"):
        elf.read_shared_library(path)


# ------------------------------------------------------------------------------------------------------------
# Model plugin check


def _model(nodes, functions=()):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)],
                             functions=list(functions))


def test_plugin_uses_reads_defaults_subgraphs_and_functions():
    then_branch = helper.make_graph([helper.make_node("InBranch", ["x"], ["z"], name="b0", domain="acme")], "then", [],
                                    [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    function = helper.make_function("acme", "Wrapper", ["a"], ["b"],
                                    [helper.make_node("InFunction", ["a"], ["b"], domain="acme", plugin_version="3")],
                                    [helper.make_opsetid("", 17)])
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Foo", ["r"], ["f"], name="foo0", domain="acme", plugin_namespace="acme_ns"),
            helper.make_node("Foo", ["f"], ["g"], name="foo1", domain="acme", plugin_namespace="acme_ns"),
            helper.make_node("Wrapper", ["g"], ["w"], name="call", domain="acme"),
            helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_branch, else_branch=then_branch),
        ],
        functions=[function],
    )
    uses = {use.key: use for use in plugin_uses(model)}
    assert set(uses) == {
        PluginKey("Foo", "1", "acme_ns"),
        PluginKey("InFunction", "3", ""),
        PluginKey("InBranch", "1", ""),
    }
    assert uses[PluginKey("Foo", "1", "acme_ns")].node_names == ["foo0", "foo1"]
    assert uses[PluginKey("Foo", "1", "acme_ns")].domains == {"acme"}


def test_native_op_predicate_decides_what_is_a_plugin():
    model = _model([helper.make_node("CustomButNative", ["x"], ["y"], name="n", domain="acme")])
    assert plugin_uses(model, is_native_op=lambda op, domain: op == "CustomButNative") == []
    assert [u.key.name for u in plugin_uses(model)] == ["CustomButNative"]


def test_describe_missing_is_one_line_with_providers_and_near_misses():
    model = _model([helper.make_node("Foo", ["x"], ["y"], name=f"n{i}", domain="acme", plugin_version="2") for i in range(5)]
                   + [helper.make_node("Bar", ["x"], ["y"], name="bar", domain="acme"),
                      helper.make_node("Ours", ["x"], ["y"], name="ours", domain="acme")])
    uses = plugin_uses(model)
    registered = {PluginKey("Foo", "1", ""): "/opt/libfoo.so", PluginKey("Builtin", "1", ""): None}
    missing = missing_plugins(uses, registered)
    assert [use.key.name for use in missing] == ["Foo", "Bar", "Ours"]
    text = describe_missing("m.onnx", missing, registered, {PluginKey("Ours", "1", ""): "the shipped library"})
    assert "\n" not in text
    assert text.startswith("m.onnx needs TensorRT plugin(s) that are not registered: ")
    assert ("Foo version 2 namespace '' (nodes 'n0', 'n1', 'n2' +2 more; registered only as version 1 namespace '' "
            "from /opt/libfoo.so") in text
    assert "Bar version 1 namespace '' (node 'bar'; no loaded library provides it)" in text
    assert "Ours version 1 namespace '' (node 'ours'; provided by the shipped library)" in text


def test_describe_plugins_without_nodes_names_only_the_plugins():
    text = describe_plugins([PluginUse(PluginKey("Foo", "1", "acme"))], {PluginKey("Foo", "2", "acme"): None}, {})
    assert text == (
        "Foo version 1 namespace 'acme' (registered only as version 2 namespace 'acme': fix the node's "
        "plugin_version/plugin_namespace or load the right library)"
    )


# ------------------------------------------------------------------------------------------------------------
# Which files --plugins DIR looks at, and where the shipped library is looked for


@pytest.mark.parametrize(
    "name, is_library",
    [
        ("libfoo.so", True),
        ("libfoo.so.10", True),
        ("libfoo.so.10.3.1", True),
        ("ld.so.cache", False),
        ("libfoo.so.bak", False),
        ("libfoo.so~", False),
        ("foo.soa", False),
        (".so", False),
    ],
)
def test_directory_entries_named_like_libraries(name, is_library):
    assert discovery.is_library_name(Path(name)) is is_library


def test_shipped_library_is_never_taken_from_the_script_directory(tmp_path, monkeypatch):
    from polygraphy_ext.plugins.specs import library_spec

    planted = tmp_path / "polygraphy_ext" / "lib" / library_spec().library_file
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"\x7fELF")
    monkeypatch.syspath_prepend(str(tmp_path))  # where a script in tmp_path, or `python -c` there, puts it
    monkeypatch.chdir(tmp_path)
    found = library.shipped_library_path()
    assert found is None or tmp_path not in found.parents


# ------------------------------------------------------------------------------------------------------------
# TensorRT's messages about plugin creators it could not find (engine deserialization)


def test_missing_creators_are_read_from_tensorrt_messages():
    messages = [
        # TensorRT-RTX 1.7, as logged by IPluginRegistry::getCreator (the name carries the namespace)
        "IPluginRegistry::getCreator: Error Code 4: API Usage Error (Cannot find plugin: PgxTestIdentitypgx_test, "
        "version: 1, namespace:pgx_test. In getCreatorInternal at /_src/runtime/dispatch/pluginRegistry.cpp:398)",
        "IPluginRegistry::getCreator: Error Code 4: API Usage Error (Cannot find plugin: Foo, version: 2, "
        "namespace:. In getCreatorInternal at /_src/runtime/dispatch/pluginRegistry.cpp:398)",
        "Cannot find plugin: Gelucom.acme, version: 1, namespace:com.acme.",
        # TensorRT 8
        "INVALID_ARGUMENT: getPluginCreator could not find plugin Prelu_TRT version 1",
        "Cannot find plugin: Foo, version: 2, namespace:.",  # the same lookup again is named once
    ]
    keys, unnamed = engine_failure.missing_creators_in_log(messages)
    assert keys == [
        PluginKey("PgxTestIdentity", "1", "pgx_test"),
        PluginKey("Foo", "2", ""),
        PluginKey("Gelu", "1", "com.acme"),
        PluginKey("Prelu_TRT", "1", ""),
    ]
    assert not unnamed


def test_unnamed_missing_creator_is_recognised():
    keys, unnamed = engine_failure.missing_creators_in_log(
        [
            "[pluginV2Runner.cpp::load::290] Error Code 1: Serialization (Serialization assertion creator failed."
            "Cannot deserialize plugin since corresponding IPluginCreator not found in Plugin Registry)",
        ]
    )
    assert keys == [] and unnamed
    assert engine_failure.missing_creators_in_log(["cudaError 35: CUDA driver version is insufficient"]) == ([], False)


# ------------------------------------------------------------------------------------------------------------
# onnxruntime reference for our plugin nodes


def _layer_norm(v, gamma, beta, eps):
    mean = v.mean(-1, keepdims=True)
    var = ((v - mean) ** 2).mean(-1, keepdims=True)
    return (v - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("opset", [13, 17])
def test_reference_ops_match_numpy(opset):
    ln, sln, rms, bg = (plugin_spec(name) for name in ("LayerNorm", "SkipLayerNorm", "RMSNorm", "BiasGelu"))
    rng = np.random.default_rng(0)
    gamma, beta, bias = (rng.standard_normal(16).astype(np.float32) for _ in range(3))
    dom = ln.onnx_domain
    nodes = [
        helper.make_node("LayerNorm", ["x", "gamma", "beta"], ["y1"], domain=dom, **ln.onnx_attrs(epsilon=1e-5)),
        helper.make_node("SkipLayerNorm", ["y1", "x", "gamma", "beta", "bias"], ["y2", "sum"], domain=dom,
                         **sln.onnx_attrs(epsilon=1e-5, has_bias=1, output_sum=1)),
        helper.make_node("RMSNorm", ["y2", "gamma"], ["y3"], domain=dom, **rms.onnx_attrs(epsilon=1e-6)),
        helper.make_node("BiasGelu", ["y3", "bias"], ["y4"], domain=dom, **bg.onnx_attrs(approximate="tanh")),
        helper.make_node("BiasGelu", ["y4", "bias"], ["y5"], domain=dom, **bg.onnx_attrs()),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 16])],
        [helper.make_tensor_value_info("y5", TensorProto.FLOAT, [3, 16]),
         helper.make_tensor_value_info("sum", TensorProto.FLOAT, [3, 16])],
        [numpy_helper.from_array(a, n) for a, n in ((gamma, "gamma"), (beta, "beta"), (bias, "bias"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(dom, 1)],
                              ir_version=8)
    assert has_plugin_nodes(model)
    lowered, counts = lower_plugin_nodes(model)
    assert counts == {"LayerNorm": 1, "SkipLayerNorm": 1, "RMSNorm": 1, "BiasGelu": 2}
    assert not has_plugin_nodes(lowered)
    assert lowered.opset_import[0].version == opset

    x = rng.standard_normal((3, 16)).astype(np.float32)
    y5, total = ort.InferenceSession(lowered.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})

    y1 = _layer_norm(x, gamma, beta, 1e-5)
    s = y1 + x + bias
    y3 = (lambda v: v / np.sqrt((v**2).mean(-1, keepdims=True) + 1e-6) * gamma)(_layer_norm(s, gamma, beta, 1e-5))
    t = y3 + bias
    y4 = 0.5 * t * (1 + np.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t**3)))
    t = y4 + bias
    expected = 0.5 * t * (1 + np.vectorize(math.erf)(t / math.sqrt(2)))
    np.testing.assert_allclose(total, s, atol=1e-5)
    np.testing.assert_allclose(y5, expected, atol=1e-4)


def test_models_without_our_nodes_are_left_alone():
    model = _model([helper.make_node("Relu", ["x"], ["y"])])
    assert lower_plugin_nodes(model) == (model, {})


# ------------------------------------------------------------------------------------------------------------
# TensorRT-RTX parser library


def test_rtx_parser_link_is_created_or_the_fix_is_named(tmp_path, monkeypatch):
    (tmp_path / "libtensorrt_rtx.so.1").write_bytes(b"")
    monkeypatch.setattr(trt_env, "_rtx_libs_dir", lambda: tmp_path)

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(trt_env.os, "symlink", refuse)
    with pytest.raises(trt_env.TrtEnvironmentError) as err:
        trt_env.ensure_rtx_parser_library()
    assert str(err.value).endswith(f"Fix: ln -s libtensorrt_rtx.so.1 {tmp_path / 'libtensorrt_rtx.so'}")
    assert "\n" not in str(err.value)

    monkeypatch.undo()
    monkeypatch.setattr(trt_env, "_rtx_libs_dir", lambda: tmp_path)
    link = trt_env.ensure_rtx_parser_library()
    assert link == tmp_path / "libtensorrt_rtx.so" and link.resolve() == tmp_path / "libtensorrt_rtx.so.1"


def test_rtx_parser_link_made_by_another_process_meanwhile_is_fine(tmp_path, monkeypatch):
    (tmp_path / "libtensorrt_rtx.so.1").write_bytes(b"")
    monkeypatch.setattr(trt_env, "_rtx_libs_dir", lambda: tmp_path)
    real_symlink = trt_env.os.symlink

    def race(target, link):
        real_symlink(target, link)  # the other process wins...
        raise FileExistsError(17, "File exists")  # ...and ours finds the name taken

    monkeypatch.setattr(trt_env.os, "symlink", race)
    assert trt_env.ensure_rtx_parser_library() == tmp_path / "libtensorrt_rtx.so"


def test_reference_lowering_takes_omitted_fields_from_specs_json(monkeypatch):
    import dataclasses

    from polygraphy_ext.plugins import ort_reference, specs

    real = specs.library_spec()
    rms = real.plugins["RMSNorm"]
    changed = dataclasses.replace(
        rms, fields={**rms.fields, "epsilon": dataclasses.replace(rms.fields["epsilon"], default=0.25)}
    )
    fake = dataclasses.replace(real, plugins={**real.plugins, "RMSNorm": changed})
    monkeypatch.setattr(ort_reference, "library_spec", lambda: fake)
    node = helper.make_node("RMSNorm", ["x", "gamma"], ["y"], domain=real.onnx_domain)  # no attributes at all
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.ones(4, np.float32), "gamma")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(real.onnx_domain, 1)])
    lowered, _ = ort_reference.lower_plugin_nodes(model)
    (lowered_node,) = lowered.graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in lowered_node.attribute}
    assert attrs["epsilon"] == pytest.approx(0.25) and attrs["axis"] == -1
