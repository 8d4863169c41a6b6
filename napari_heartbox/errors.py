"""Exceptions with one-line, human messages.

Every error a user can cause (a bad file, a missing model) is raised as a
subclass of :class:`HeartboxError`, whose ``str()`` is a single sentence that
names the file and the problem. The CLI and the napari widget show that line
and never a traceback.
"""

from __future__ import annotations

__all__ = ['CTLoadError', 'HeartboxError', 'ModelError']


class HeartboxError(Exception):
    """Base class: a problem the user can act on, with a one-line message."""


class CTLoadError(HeartboxError, ValueError):
    """A path could not be read as a CT volume."""


class ModelError(HeartboxError, RuntimeError):
    """The bundled model is missing, corrupt or does not match its card."""
