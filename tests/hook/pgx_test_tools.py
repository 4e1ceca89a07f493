"""Test-only tools registered through the start-up hook (POLYGRAPHY_EXT_TEST_TOOLS / ..._SURGEON_SUBTOOLS).

Imports polygraphy.tools at module top, like every real tool module: importing this module first is exactly
the import cycle that would make Polygraphy register a MissingTool without the hook's lazy proxies.
"""

from polygraphy.logger import G_LOGGER
from polygraphy.tools import Tool
from polygraphy.tools.surgeon.subtool.base import BaseSurgeonSubtool


class HelloTool(Tool):
    """
    Test-only tool that prints a greeting.
    """

    def __init__(self):
        super().__init__("pgx-hello")

    def add_parser_args_impl(self, parser):
        parser.add_argument("--who", default="world")

    def run_impl(self, args):
        print(f"hello {args.who} from pgx-hello")
        return 0


class HelloSubtool(BaseSurgeonSubtool):
    """
    Test-only surgeon subtool that prints a greeting.
    """

    def __init__(self):
        super().__init__("pgx-hello-surgeon")

    def add_parser_args_impl(self, parser):
        parser.add_argument("--who", default="surgeon")

    def run_impl_surgeon(self, args):
        print(f"hello {args.who} from pgx-hello-surgeon")
        G_LOGGER.info("surgeon subtool ran")
        return 0


class BrokenTool(Tool):
    """
    Test-only tool whose construction fails.
    """

    def __init__(self):
        raise RuntimeError("deliberately broken")
