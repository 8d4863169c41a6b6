"""Training pipeline of the napari-heartbox heart model (dev-only; needs torch).

``python -m models.train`` generates phantom data, preprocesses it with the
ONNX preprocessing graph, trains :mod:`models.net`, exports the composed ONNX
model and its card, evaluates, and writes ``models/MODEL_CARD.md``.
"""
