"""A whole pass subtool declared the way fuse-gelu/to-fp16 will be: a PassLoader, a PassArgs group, a PassSubtool.

The pass renames every node that has no name (``--prefix``) and reports how many it named; registered for the
tests only (POLYGRAPHY_EXT_TEST_SURGEON_SUBTOOLS), so the lifecycle is proven on a pass it was not written for.
"""

from polygraphy import mod, util

from polygraphy_ext.passes.pass_loader import PassLoader
from polygraphy_ext.tools.args.pass_args import PassArgs, PassOption
from polygraphy_ext.tools.pass_subtool import PassSubtool


class NameReport:
    def __init__(self, named):
        self.named = named

    def summary(self):
        return f"named {len(self.named)} node(s)"

    def to_dict(self):
        return {"named": self.named}


@mod.export(funcify=True)
class NameNodes(PassLoader):
    def __init__(self, model, prefix=None, infer_shapes=None):
        super().__init__(model, infer_shapes=infer_shapes)
        self.prefix = util.default(prefix, "node")

    def run_pass(self, graph):
        named = []
        for index, node in enumerate(graph.nodes):
            if not node.name:
                node.name = f"{self.prefix}_{index}"
                named.append(node.name)
        return NameReport(named)

    def changed(self, report):
        return bool(report.named)


class NameNodesArgs(PassArgs):
    """
    Node naming: what unnamed nodes are called
    """

    NAME = "name-nodes"
    LOADER = ("pgx_toy_pass", "NameNodes")
    RESULT = "named"
    OPTIONS = [
        PassOption("--prefix", default="node", help="Prefix of the new names.", run_help="With --name-nodes: prefix.")
    ]

    def check_options(self, flag):
        if not self.prefix:
            return f"{flag('prefix')} must not be empty"
        return None


class NameNodesRunArgs(NameNodesArgs):
    """
    Node naming for TensorRT: naming the nodes of the model TensorRT parses
    """

    FOR_RUN = True


class NameNodesTool(PassSubtool):
    """
    Name every unnamed node.
    """

    NAME = "name-nodes"
    PASS_ARGS = NameNodesArgs
    SHAPE_INFERENCE = False
