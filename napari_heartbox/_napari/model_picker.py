"""The "model" field shared by the Heart sector and worklist widgets.

Empty: the bundled model. A folder written by ``napari-heartbox finetune
--out`` (``heartbox.onnx`` + ``heartbox.card.json``) or an ``.onnx`` file with
its card beside it: that model, checked against its card when chosen. A bad
choice is a one-line message under the field and the previous model stays.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import FileEdit, Label

from ..errors import HeartboxError
from .box_controls import wrap_label

__all__ = ['ModelPicker']


class ModelPicker:
    """A model folder field with a one-line description of the model in use.

    Not a container: the owning widget puts :attr:`path` among its other
    labelled fields (so the labels line up) and :attr:`note` under them.
    """

    def __init__(self):
        self.path = FileEdit(label='model', mode='d', tooltip='empty: the bundled model; or a '
                             '`napari-heartbox finetune --out` folder')
        self.note = Label(value='model: bundled')
        wrap_label(self.note)
        self._model = None  # None = the bundled model
        self.path.changed.connect(lambda v: self.use(v))

    @property
    def model(self):
        """The chosen :class:`~napari_heartbox.model.runtime.HeartModel`, or None (bundled)."""
        return self._model

    def use(self, path) -> bool:
        """Choose the model at ``path`` (None, '' or '.': the bundled one); False on a bad one."""
        if path is None or str(path) in ('', '.'):
            self._model = None
            self.note.value = 'model: bundled'
            self._show(path)
            return True
        try:
            from ..model.runtime import HeartModel

            model = HeartModel.load(Path(path))
        except (HeartboxError, ImportError) as e:
            self.note.value = f'model not changed: {e}'
            return False
        self._model = model
        tuned = ' (fine-tuned)' if model.card.get('finetuned') else ''
        self.note.value = f'model: {Path(path).name}{tuned}, sha {model.sha256[:12]}'
        self._show(path)
        return True

    def _show(self, path) -> None:
        """The field shows the chosen path (also when chosen from code)."""
        text = '' if path is None or str(path) in ('', '.') else str(path)
        field = self.path.line_edit  # its text (FileEdit's value turns '' into a folder)
        if field.value != text:
            with self.path.changed.blocked():
                field.value = text
