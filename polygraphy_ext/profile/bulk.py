"""Helpers for building hundreds of thousands of small objects quickly."""

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector while a bulk step allocates.

    Parsing a 100,000-layer profile creates ~300,000 acyclic objects; each allocation burst triggers
    generation scans that find nothing to collect and cost ~15% of the run. Reference counting still frees
    everything as usual; the collector resumes (if it was on) when the block ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
