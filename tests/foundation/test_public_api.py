"""The documented Python API: polygraphy_ext.passes.fuse_layernorm / align_dims are the pass functions."""

import subprocess
import sys
import types


def test_pass_functions_stay_functions_after_their_packages_are_imported():
    # Importing the implementation packages first used to rebind the names to modules.
    code = """
import types
import polygraphy_ext.passes.layernorm_fusion.loader
import polygraphy_ext.passes.dim_alignment.loader
import polygraphy_ext.passes as passes
from polygraphy_ext.passes import fuse_layernorm, align_dims, FusionReport, AlignReport
assert isinstance(passes.fuse_layernorm, types.FunctionType), passes.fuse_layernorm
assert isinstance(passes.align_dims, types.FunctionType), passes.align_dims
assert fuse_layernorm is passes.fuse_layernorm and align_dims is passes.align_dims
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_pass_functions_run_on_a_graph():
    import numpy as np
    import onnx_graphsurgeon as gs

    from polygraphy_ext.passes import AlignReport, FusionReport, align_dims, fuse_layernorm

    x = gs.Variable("x", np.float32, (4, 8))
    y = gs.Variable("y", np.float32, (4, 8))
    graph = gs.Graph(nodes=[gs.Node("Relu", inputs=[x], outputs=[y])], inputs=[x], outputs=[y], opset=17)
    assert isinstance(fuse_layernorm(graph), FusionReport)
    assert isinstance(align_dims(graph), AlignReport)
    assert isinstance(fuse_layernorm, types.FunctionType)
