"""What polygraphy-ext adds to Polygraphy's command line, and where each implementation lives.

Read by the start-up hook (``_polygraphy_ext_hook``) only after Polygraphy imports its tool registry or
surgeon module, so this file must stay import-free and cheap. An entry whose module is not present in the
installed package is skipped, so a tool appears only once its implementation exists.
"""

# (command name, module, class name) -- top-level tools, i.e. `polygraphy <name>`
TOOLS = [
    ("rank-profile", "polygraphy_ext.tools.rank_profile", "RankProfile"),
]

# (subtool name, module, class name) -- `polygraphy surgeon <name>`
SURGEON_SUBTOOLS = [
    ("fuse-ln", "polygraphy_ext.tools.fuse_ln", "FuseLn"),
    ("align-dims", "polygraphy_ext.tools.align_dims", "AlignDims"),
    ("fuse-gelu", "polygraphy_ext.tools.fuse_gelu", "FuseGelu"),
    ("to-fp16", "polygraphy_ext.tools.to_fp16", "ToFp16"),
]

# (module, class name) -- argument groups `polygraphy run` gets through the polygraphy.run.plugins entry point:
# a pass's PassArgs with FOR_RUN = True (its switch, e.g. --fuse-ln, and its options prefixed with it).
RUN_ARG_GROUPS = [
    ("polygraphy_ext.tools.args.fuse_ln", "FuseLnRunArgs"),
    ("polygraphy_ext.tools.args.fuse_gelu", "FuseGeluRunArgs"),
]
