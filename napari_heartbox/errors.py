"""Exceptions with one-line, human messages.

Every error a user can cause (a bad file, a missing model) is raised as a
subclass of :class:`HeartboxError`, whose ``str()`` is a single sentence that
names the file and the problem. The CLI and the napari widget show that line
and never a traceback.
"""

from __future__ import annotations

__all__ = ['CTLoadError', 'HeartboxError', 'ModelError']


#: longest message kept (characters); raw header bytes or decoder dumps are cut there
MAX_MESSAGE = 400


def one_line(text: str) -> str:
    """``text`` as one line: whitespace runs (newlines included) become one space,
    cut at :data:`MAX_MESSAGE` characters."""
    line = ' '.join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + '…'


class HeartboxError(Exception):
    """Base class: a problem the user can act on, with a one-line message.

    The message is made one line whatever it was built from (an underlying
    library's multi-line text, raw header bytes); an empty one says so.
    """

    def __init__(self, message: object = '', *args: object):
        text = one_line(message)
        super().__init__(text or f'{type(self).__name__} (no details given)', *args)


class CTLoadError(HeartboxError, ValueError):
    """A path could not be read as a CT volume."""


class ModelError(HeartboxError, RuntimeError):
    """The bundled model is missing, corrupt or does not match its card."""
