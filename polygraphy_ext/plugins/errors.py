"""The one exception polygraphy-ext's plugin loading raises, and the one-line way to raise it."""

from polygraphy.exception import PolygraphyException
from polygraphy.logger import G_LOGGER


class PluginLoadError(PolygraphyException):
    """A plugin library or a model's plugin nodes cannot be used; the message is one line and says why."""


def fail(message: str):
    """Log ``message`` as Polygraphy's one-line error and raise ``PluginLoadError``."""
    G_LOGGER.critical(message, ExceptionType=PluginLoadError)
