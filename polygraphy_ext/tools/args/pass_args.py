"""``PassArgs``: one argument group per graph pass, shared by ``polygraphy surgeon <pass>`` and ``polygraphy run``.

Modelled on Polygraphy's ``ConstFoldArgs``: the group parses the pass's options and, in ``add_to_script_impl``,
adds the pass's loader to a script. The surgeon subtool builds its loader through that same method
(``make_loader``), and ``polygraphy run`` puts it into TensorRT's ONNX loader chain, so ``--gen-script`` shows
the pass wherever it runs.

A pass declares its options once (``OPTIONS``); the surgeon subtool spells them as declared (``--target``),
``polygraphy run`` prefixes them with the pass's name and adds the switch that turns the pass on
(``--fuse-ln``, ``--fuse-ln-target``). Declaring a pass's group::

    class FuseGeluArgs(PassArgs):
        \"\"\"
        GELU Fusion: fusing erf/tanh GELU chains (polygraphy-ext, see docs/fuse-gelu.md)
        \"\"\"

        NAME = "fuse-gelu"                                   # `polygraphy run --fuse-gelu`
        LOADER = ("polygraphy_ext.passes.gelu_fusion.loader", "FuseGelu")
        OPTIONS = [
            PassOption("--approximate", action="store_true", help="..."),
        ]

        def check_options(self, flag):                     # optional: flag(dest) spells an option as this form does
            if ...: return f"{flag('approximate')} needs ..."

    class FuseGeluRunArgs(FuseGeluArgs):
        \"\"\"
        GELU Fusion for TensorRT: fusing GELU chains in the model TensorRT parses (polygraphy-ext)
        \"\"\"

        FOR_RUN = True

and a line in ``RUN_ARG_GROUPS`` of ``polygraphy_ext/integration/registry.py``.
"""

import functools
from typing import Dict, List, Optional, Tuple

from polygraphy.logger import G_LOGGER
from polygraphy.tools.args import util as args_util
from polygraphy.tools.args.base import BaseArgs
from polygraphy.tools.script import make_invocable


class PassOption:
    """One option of a pass: the flag ``polygraphy surgeon`` spells, and ``argparse`` keyword arguments.

    ``dest`` is both the parsed attribute and the loader's keyword argument (override with ``loader_kwarg``;
    ``None`` for options the loader does not take). ``run_help`` replaces ``help`` in ``polygraphy run``.
    """

    def __init__(self, flag: str, *, dest: Optional[str] = None, loader_kwarg: Optional[str] = "", run_help=None,
                 **argparse_kwargs):
        self.flag = flag
        self.dest = dest or flag.lstrip("-").replace("-", "_")
        self.loader_kwarg = self.dest if loader_kwarg == "" else loader_kwarg
        self.run_help = run_help
        self.argparse_kwargs = argparse_kwargs


class PassArgs(BaseArgs):
    NAME: str = ""
    LOADER: Tuple[str, str] = ("", "")
    RESULT: str = "rewritten"  # the output model in messages: "the fused model"
    SCRIPT_NAME: str = ""  # the loader's variable in generated scripts; defaults to NAME in snake case
    OPTIONS: List[PassOption] = []
    FOR_RUN: bool = False

    def __init__(self):
        super().__init__()
        self.enabled = None
        self.options: Dict[str, object] = {}

    # -- spelling -------------------------------------------------------------------------------------------
    def flag(self, dest: str) -> str:
        """The command-line spelling of option ``dest`` in this form of the group."""
        option = next(o for o in self.OPTIONS if o.dest == dest)
        if not self.FOR_RUN:
            return option.flag
        return f"--{self.NAME}-{option.flag.lstrip('-')}"

    @property
    def switch(self) -> str:
        return f"--{self.NAME}"

    # -- BaseArgs ---------------------------------------------------------------------------------------------
    def add_parser_args_impl(self):
        if self.FOR_RUN:
            self.group.add_argument(
                self.switch, action="store_true", default=None, dest=self._switch_dest, help=self.run_switch_help()
            )
        for option in self.OPTIONS:
            kwargs = dict(option.argparse_kwargs)
            if self.FOR_RUN:
                # None means "not given", so that an option without the switch can be refused.
                kwargs["default"] = None
                if option.run_help is not None:
                    kwargs["help"] = option.run_help
            self.group.add_argument(self.flag(option.dest), dest=self._dest(option), **kwargs)

    def parse_impl(self, args):
        """
        Attributes:
            enabled (bool): Whether the pass runs (always, for the surgeon subtool; with the switch in ``run``).
            options (Dict[str, object]): Every option by ``dest``; each is also an attribute of this group.
        """
        self.enabled = True if not self.FOR_RUN else bool(args_util.get(args, self._switch_dest))
        self.options = {option.dest: args_util.get(args, self._dest(option)) for option in self.OPTIONS}
        for dest, value in self.options.items():
            setattr(self, dest, value)
        if self.FOR_RUN and not self.enabled:
            given = [self.flag(o.dest) for o in self.OPTIONS if self.options[o.dest] not in (None, False)]
            if given:
                every = [self.flag(o.dest) for o in self.OPTIONS]
                G_LOGGER.critical(f"{', '.join(every)} need {self.switch} (given: {' '.join(given)})")
        # Caught here, not when the pass (or a generated script) runs, so that a typo costs nothing.
        problem = self.check_options(self.flag) if self.enabled else None
        if problem:
            G_LOGGER.critical(problem)
        if self.FOR_RUN and self.enabled:
            from polygraphy_ext.tools.args.run_route import route_trt_onnx_loader

            route_trt_onnx_loader(self)

    def add_to_script_impl(self, script, loader_name, **extra_kwargs):
        """
        Args:
            loader_name (str): The loader of the ONNX model the pass consumes.
            extra_kwargs: Loader keyword arguments the command line does not set (e.g. ``external_data_dir``).

        Returns:
            str: The name of the pass's loader in the script (``loader_name`` itself when the pass is off).
        """
        if not self.enabled:
            return loader_name
        module, class_name = self.LOADER
        script.add_import(imports=[class_name], frm=module)
        kwargs = {o.loader_kwarg: self.options[o.dest] for o in self.OPTIONS if o.loader_kwarg is not None}
        kwargs.update(self.extra_loader_kwargs())
        kwargs.update(extra_kwargs)
        return script.add_loader(make_invocable(class_name, loader_name, **kwargs), self.script_name)

    def make_loader(self, model, **extra_kwargs):
        """The pass's loader over ``model``, built through ``add_to_script`` (not called yet)."""
        return args_util.run_script(functools.partial(self.add_to_script, **extra_kwargs), model)

    # -- for subclasses -----------------------------------------------------------------------------------------
    def check_options(self, flag) -> Optional[str]:
        """A one-line reason why the parsed options cannot go together, or None. ``flag(dest)`` spells one."""
        return None

    def extra_loader_kwargs(self) -> Dict[str, object]:
        """Loader keyword arguments this form always adds (e.g. shape inference before fusing in ``run``)."""
        return {}

    def run_switch_help(self) -> str:
        return f"Apply `polygraphy surgeon {self.NAME}` to the ONNX model TensorRT parses."

    @property
    def script_name(self):
        return self.SCRIPT_NAME or self.NAME.replace("-", "_")

    @property
    def _switch_dest(self):
        return self.NAME.replace("-", "_")

    def _dest(self, option):
        return f"{self._switch_dest}_{option.dest}" if self.FOR_RUN else option.dest
