"""``polygraphy rank-profile``: the CLI adapter over :mod:`polygraphy_ext.profile`."""

import os
import sys

from polygraphy.logger import G_LOGGER
from polygraphy.tools.base import Tool

from polygraphy_ext.profile.advise import advise, diff_advice, engine_precision
from polygraphy_ext.profile.api import analyze_profile
from polygraphy_ext.profile.diff import diff_profiles
from polygraphy_ext.profile.errors import ProfileError
from polygraphy_ext.profile.grouping import GROUP_KEYS, group, parse_group_by
from polygraphy_ext.profile.parse import DEFAULT_MAX_BYTES
from polygraphy_ext.profile.render import (
    DEFAULT_NAME_WIDTH,
    DEFAULT_TOP_FOR_TEXT,
    FORMATS,
    color_enabled,
    diff_verdict,
    render_diff,
    render_ranking,
    summary_line,
)
from polygraphy_ext.tools.common import user_error, write_atomically, write_text_atomically

_FORMAT_BY_EXTENSION = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}


class RankProfile(Tool):
    """
    Rank the layers of a trtexec profile by time share: where does the engine's time go, and what changed.

    Reads any `trtexec --exportProfile` JSON (TensorRT 7 to 11), optionally joined with `--exportLayerInfo`
    output, and prints a ranked table, family/prefix/type/tactic/precision groups, sanity notes,
    or a diff against an earlier profile.
    """

    def __init__(self):
        super().__init__("rank-profile")

    def add_parser_args_impl(self, parser):
        parser.add_argument("profile", help="Profile JSON written by trtexec --exportProfile (any extension)")
        parser.add_argument(
            "--layer-info",
            metavar="PATH",
            help="Layer information JSON written by trtexec --exportLayerInfo (layer_names_only or detailed "
            "verbosity); joined to the profile by name, then by position between name matches",
        )
        parser.add_argument(
            "--run",
            type=int,
            metavar="K",
            help="Which profile to use when the file holds several concatenated arrays: 1-based, negative counts "
            "from the end. Default: the last",
        )
        parser.add_argument(
            "--top",
            type=int,
            metavar="N",
            help=f"Show the N slowest layers (0: all). Default: {DEFAULT_TOP_FOR_TEXT} for table/markdown, all for "
            "csv/json",
        )
        parser.add_argument(
            "--group-by",
            metavar="KEY",
            help=f"Also add up time by one of: {', '.join(GROUP_KEYS)}. prefix[:DEPTH] groups by the first DEPTH "
            "components of the layer's module path (default 2); type, tactic and precision need a detailed "
            "--layer-info. With --format csv the CSV holds the groups instead of the layers",
        )
        parser.add_argument(
            "--explain", action="store_true", help="Show which classification rule put each layer in its family"
        )
        parser.add_argument(
            "--advise",
            action="store_true",
            help="Add findings: decomposed normalization, GEMM/conv dims off Tensor Core multiples, reformats, FP32 "
            "layers in a reduced-precision engine, unfused attention, launch-bound tiny kernels; each with its "
            "evidence and the command that addresses it. Rules that need types/dims need a detailed --layer-info. "
            "With --diff: which findings were resolved",
        )
        parser.add_argument(
            "--model",
            metavar="ONNX",
            help="With --advise: the engine's ONNX model; fuse-ln and align-dims run on copies of it to say how many "
            "norm chains they would fuse and which dims they would pad (nothing is written)",
        )
        parser.add_argument(
            "--diff",
            metavar="BEFORE",
            help="Compare against an earlier profile: the positional profile is 'after'. Layers are matched by "
            "name, then normalized name, then layer-info signature",
        )
        parser.add_argument(
            "--diff-layer-info",
            metavar="PATH",
            help="Layer information JSON of the --diff profile (enables matching by layer signature)",
        )
        parser.add_argument("--diff-run", type=int, metavar="K", help="Like --run, for the --diff profile")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            help="Output format. Default: from the -o extension (.csv, .json, .md), else table",
        )
        parser.add_argument(
            "-o", "--output", metavar="PATH", help="Write the report to PATH instead of stdout (written atomically)"
        )
        parser.add_argument(
            "--plot",
            metavar="PNG",
            help="Also write a PNG bar chart of the slowest layers and the family breakdown (needs matplotlib: "
            "pip install 'polygraphy-ext[plot]')",
        )
        parser.add_argument(
            "--name-width",
            type=int,
            default=DEFAULT_NAME_WIDTH,
            metavar="CHARS",
            help=f"Shorten layer names longer than this in the middle in table/markdown output (0: never). "
            f"csv and json always hold full names. Default: {DEFAULT_NAME_WIDTH}",
        )
        parser.add_argument(
            "--max-file-mb",
            type=float,
            default=DEFAULT_MAX_BYTES / (1024 * 1024),
            metavar="MB",
            help="Refuse input files larger than this, instead of running out of memory. Default: %(default)g",
        )

    def run_impl(self, args):
        try:
            return self._run(args)
        except ProfileError as err:
            user_error(str(err))
        except OSError as err:
            user_error(f"{err.filename or ''}: {err.strerror or err}".lstrip(": "))

    def _run(self, args):
        fmt = args.format or _FORMAT_BY_EXTENSION.get(os.path.splitext(args.output or "")[1].lower(), "table")
        _check_options(args, fmt)
        if args.plot:
            from polygraphy_ext.profile.plot import require_matplotlib

            require_matplotlib()  # fail on a missing matplotlib before any work or any output
        max_bytes = int(args.max_file_mb * 1024 * 1024)

        after = analyze_profile(args.profile, args.layer_info, run=args.run, max_bytes=max_bytes)
        detailed = after.layer_info is not None and after.layer_info.detailed
        facts = None
        if args.model:
            from polygraphy_ext.profile.model_facts import model_facts

            facts = model_facts(args.model, precision=engine_precision(after.ranking) or "FP16")
        groups = group(after.ranking, args.group_by, detailed_info=detailed) if args.group_by else None
        color = bool(G_LOGGER.colors) and args.output is None and color_enabled(sys.stdout)

        if args.diff:
            before = analyze_profile(args.diff, args.diff_layer_info, run=args.diff_run, max_bytes=max_bytes)
            notes = [f"before: {note}" for note in before.notes] + [f"after: {note}" for note in after.notes]
            diff = diff_profiles(before.ranking, after.ranking)
            change = diff_advice(_advise(before, facts), _advise(after, facts)) if args.advise else None
            text = render_diff(diff, args.diff, args.profile, fmt, args.top, notes, color, args.name_width, change)
            headline = diff_verdict(diff, change)
        else:
            text = render_ranking(
                after.ranking,
                fmt,
                args.top,
                args.explain,
                groups,
                args.group_by,
                after.notes,
                color,
                args.name_width,
                _advise(after, facts) if args.advise else None,
            )
            headline = summary_line(after.ranking)

        if args.plot:
            from polygraphy_ext.profile.plot import plot_ranking

            write_atomically(args.plot, lambda tmp: plot_ranking(after.ranking, tmp))
            G_LOGGER.info(f"Saved plot to {args.plot}")
        if args.output:
            write_text_atomically(args.output, text)
            G_LOGGER.info(f"Saved {fmt} report to {args.output}")
            G_LOGGER.info(headline)
        else:
            _write_stdout(text)
        return 0


def _advise(analyzed, facts):
    info = analyzed.layer_info
    detailed = info is not None and info.detailed
    return advise(analyzed.ranking, detailed, engine_inputs=info.io_names if info else (), facts=facts)


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        # A terminal in a legacy encoding cannot show the ellipsis of shortened names (or some layer names):
        # a replacement character keeps the columns aligned, where a traceback would show nothing.
        encoding = sys.stdout.encoding or "ascii"
        sys.stdout.write(text.encode(encoding, errors="replace").decode(encoding))
    sys.stdout.flush()


def _check_options(args, fmt):
    if args.group_by:
        parse_group_by(args.group_by)
    if args.top is not None and args.top < 0:
        raise ProfileError(f"--top {args.top}: must be 0 (all) or a positive number")
    if args.max_file_mb <= 0:
        raise ProfileError(f"--max-file-mb {args.max_file_mb:g}: must be positive")
    if args.diff_layer_info and not args.diff:
        raise ProfileError("--diff-layer-info is only meaningful with --diff")
    if args.model and not args.advise:
        raise ProfileError("--model is only used by --advise; add --advise")
    if args.advise and fmt == "csv":
        raise ProfileError("--advise has no CSV form (findings are not rows of layers); use --format json or markdown")
    if args.diff and (args.group_by or args.explain):
        raise ProfileError("--group-by and --explain describe one profile; use them without --diff")
    inputs = [p for p in (args.profile, args.layer_info, args.diff, args.diff_layer_info, args.model) if p]
    outputs = [p for p in (args.output, args.plot) if p]
    for out in outputs:
        if any(os.path.abspath(out) == os.path.abspath(inp) for inp in inputs):
            raise ProfileError(f"{out}: refusing to overwrite an input file")
    if len(outputs) == 2 and os.path.abspath(outputs[0]) == os.path.abspath(outputs[1]):
        raise ProfileError("-o and --plot name the same file")
