"""Puts a pass into the ONNX loader chain TensorRT's network loader scripts, and only there.

onnxruntime and every other runner keep the original model, so ``polygraphy run model.onnx --onnxrt --trt
--fuse-ln`` compares the rewritten TensorRT engine against the untouched reference. Several passes chain:
each wraps whatever ONNX loader is current while the network loader is being scripted.
"""

from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import OnnxLoadArgs, RunnerSelectArgs, TrtLoadNetworkArgs
from polygraphy.tools.script import make_invocable


def route_trt_onnx_loader(pass_args):
    """Make TensorRT parse the output of ``pass_args``' loader (a parsed, enabled ``PassArgs`` of ``run``)."""
    groups = pass_args.arg_groups
    runners = groups[RunnerSelectArgs].runners if RunnerSelectArgs in groups else None
    if runners is not None and "trt" not in runners.keys():
        G_LOGGER.warning(
            f"{pass_args.switch} only changes the model TensorRT parses, and no --trt runner was selected"
        )
    if TrtLoadNetworkArgs not in groups or OnnxLoadArgs not in groups:
        return
    network_args, onnx_args = groups[TrtLoadNetworkArgs], groups[OnnxLoadArgs]
    add_network = network_args.add_to_script

    def add_network_with_pass(script, *args, **kwargs):
        add_onnx = onnx_args.add_to_script
        must_use_onnx_loader = onnx_args.must_use_onnx_loader

        def onnx_loader_with_pass(script, *args, serialize_model=None, **kwargs):
            loader = add_onnx(script, *args, serialize_model=False, **kwargs)
            loader = pass_args.add_to_script(script, loader)
            if serialize_model:
                script.add_import(imports=["BytesFromOnnx"], frm="polygraphy.backend.onnx")
                serialized = make_invocable("BytesFromOnnx", loader)
                loader = script.add_loader(serialized, f"serialize_{pass_args.RESULT}_onnx")
            return loader

        onnx_args.add_to_script = onnx_loader_with_pass
        onnx_args.must_use_onnx_loader = lambda *a, **k: True  # parse the rewritten bytes, not the file
        try:
            return add_network(script, *args, **kwargs)
        finally:
            onnx_args.add_to_script = add_onnx
            onnx_args.must_use_onnx_loader = must_use_onnx_loader

    network_args.add_to_script = add_network_with_pass
