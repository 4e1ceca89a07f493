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
    ("to-fp16", "polygraphy_ext.tools.to_fp16", "ToFp16"),
]
