"""Pieces every polygraphy-ext CLI adapter needs: atomic output files and one-line user errors."""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from polygraphy.logger import G_LOGGER


def user_error(message: str):
    """Report a user error as one line and exit non-zero (Polygraphy prints no traceback for it)."""
    G_LOGGER.critical(message)


def one_line(err: Exception) -> str:
    """An exception's message on one line (what follows "... : " in a user error), its type if it has none."""
    text = " ".join(str(err).split())
    return text[:500] if text else type(err).__name__


def check_output_path(path, option: str = "the output") -> None:
    """Fail with one line unless a file can be written at ``path`` (``option`` names it in the message).

    Tools call it for every destination before doing any work, so that no output is written when another cannot be.
    """
    path = Path(path).absolute()
    if path.is_dir():
        user_error(
            f"{option} must be a file path, got the directory {path} (a path that is a directory is never replaced)"
        )
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        user_error(f"{option} cannot be created: {existing}, a parent of {path}, is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        user_error(f"{option} cannot be created: {existing} is not writable")


def write_atomically(path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move what it wrote into place only if it succeeds.

    ``writer`` receives the path the main file must be written to, inside a private temporary directory
    next to ``path`` (same file system, so the renames are atomic). Side files it writes into that directory
    (e.g. ONNX external data, referenced by a relative name) are moved next to ``path`` first and the main
    file last, so a reader never sees a main file whose data is missing or half written. On any failure the
    temporary directory is removed and nothing at ``path`` changes.
    """
    path = Path(path).absolute()
    check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as err:  # another process raced the check above
        user_error(f"Cannot create {path.parent}: {err.strerror}")
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        user_error(f"Cannot write into {path.parent}: {err.strerror}")
    try:
        tmp_main = tmp_dir / path.name
        writer(tmp_main)
        if not tmp_main.is_file():
            raise RuntimeError(f"internal error: nothing was written for {path}")
        for side in sorted(tmp_dir.rglob("*")):
            if side.is_file() and side != tmp_main:
                dest = path.parent / side.relative_to(tmp_dir)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(side, dest)
        os.replace(tmp_main, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_text_atomically(path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_onnx_atomically(save_args, model, path: Optional[str] = None):
    """Save ``model`` with the options of Polygraphy's ``OnnxSaveArgs`` group (external data, size threshold,
    ...) without ever leaving a half-written file at the destination. Returns the saved model."""
    from polygraphy.backend.onnx import save_onnx

    path = path or save_args.path
    if path is None:
        user_error("No output path given: use -o/--output.")
    external_data_path = save_args.external_data_path
    if external_data_path is not None and os.path.isabs(external_data_path):
        user_error(
            f"--external-data-path must be relative to the output model's directory, got {external_data_path}"
        )

    def writer(tmp_path):
        # Polygraphy logs the path it saves to, which here is the temporary one; "Saved model to" below is ours.
        with G_LOGGER.verbosity(G_LOGGER.WARNING):
            save_onnx(
                model,
                str(tmp_path),
                external_data_path=external_data_path,
                size_threshold=save_args.size_threshold,
                all_tensors_to_one_file=save_args.all_tensors_to_one_file,
            )

    write_atomically(path, writer)
    G_LOGGER.info(f"Saved model to {path}")
    return model
