"""The model card: the single source of truth for the runtime configuration.

``napari_heartbox/model/assets/heartbox.card.json`` sits next to
``heartbox.onnx`` and holds ``name``, ``version``, ``sha256`` (of the
.onnx bytes), ``bytes``, ``opset``, ``params``, ``inputs``/``outputs``
(name, dtype, shape), ``preprocess`` (window, cell rule), ``postprocess``
(see :func:`napari_heartbox.model.postprocess.sector_from_prob`),
``runtime`` (batch size, threads), ``metrics`` and ``trained_with``. The web
exporter copies the .onnx and builds its config from this card.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from ..errors import ModelError

__all__ = [
    'CARD_NAME',
    'ONNX_NAME',
    'REQUIRED_KEYS',
    'assets_dir',
    'load_card',
    'sha256_file',
    'write_card',
]

ONNX_NAME = 'heartbox.onnx'
CARD_NAME = 'heartbox.card.json'
REQUIRED_KEYS = ('name', 'version', 'sha256', 'inputs', 'outputs', 'postprocess')
POSTPROCESS_KEYS = ('threshold', 'min_heart_volume_ml', 'default_margin_mm', 'confidence')


def assets_dir() -> Path:
    """Folder of the bundled model files (package data)."""
    return Path(str(resources.files('napari_heartbox').joinpath('model/assets')))


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def load_card(path) -> dict:
    """Read and check a model card JSON file.

    Raises
    ------
    ModelError
        If the file is missing, not JSON, or lacks a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f'no model bundled yet: model card {path} not found')
    try:
        card = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as e:
        raise ModelError(f'model card {path} is not readable JSON ({e})') from None
    missing = [k for k in REQUIRED_KEYS if k not in card]
    missing += [
        f'postprocess.{k}' for k in POSTPROCESS_KEYS if k not in card.get('postprocess', {})
    ]
    if missing:
        raise ModelError(f'model card {path} lacks {", ".join(missing)}')
    return card


def write_card(path, card: dict) -> None:
    """Write a card as stable, human-readable JSON (sorted top-level order kept)."""
    Path(path).write_text(json.dumps(card, indent=2) + '\n', encoding='utf-8')
