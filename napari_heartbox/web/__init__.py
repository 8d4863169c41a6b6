"""The browser app: export a static WebAssembly bundle and serve it locally.

* :func:`napari_heartbox.web.export.export_web` writes a self-contained bundle
  (our app sources from ``web/app/``, the bundled ONNX model, a config JSON
  generated from the model card, and the onnxruntime-web / dicom-parser /
  uPlot runtime files from ``web/vendor/``).
* :func:`napari_heartbox.web.serve.serve` serves a bundle on 127.0.0.1 with
  the MIME types and cross-origin-isolation headers onnxruntime-web needs.

Nothing here imports Qt, napari or onnxruntime.
"""

from __future__ import annotations

__all__ = ['export_web', 'serve']


def __getattr__(name: str):
    if name == 'export_web':
        from .export import export_web

        return export_web
    if name == 'serve':
        from .serve import serve

        return serve
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
