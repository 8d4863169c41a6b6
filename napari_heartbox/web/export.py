"""Write the static heartbox web bundle (``napari-heartbox export-web OUTDIR``).

Bundle layout (everything is served from one origin; the page's Content
Security Policy forbids any other)::

    OUTDIR/
      index.html, speed.html, example-host.html, *.js, app.css   # web/app/
      heartbox.onnx            # the exact bundled model (same SHA-256)
      heartbox.config.json     # generated here from the model card: one source of truth
      vendor/                  # onnxruntime-web, dicom-parser, uPlot (+ manifest.json)
      serve.py                 # standalone 127.0.0.1 server with COOP/COEP
      _headers                 # the same headers for static hosts that read this file
      README.txt               # how to serve it
      bundle.json              # every file with its size and SHA-256

Runtime files come from the package's ``web/vendor/`` (filled at build time
by ``make web-vendor``) or, in a source checkout, from
``web_export/node_modules`` via ``node web_export/build.mjs``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ..errors import HeartboxError, ModelError
from ..model.card import CARD_NAME, ONNX_NAME, load_card, sha256_file
from ..sector import SCHEMA_ID
from .serve import CSP

__all__ = ['CONFIG_SCHEMA', 'build_config', 'export_web', 'vendor_dir']

CONFIG_SCHEMA = 'heartbox.webconfig/1'

_PKG = Path(__file__).resolve().parent
APP_DIR = _PKG / 'app'
VENDOR_DIR = _PKG / 'vendor'
MODEL_ASSETS = _PKG.parent / 'model' / 'assets'
# web_export/ next to the package in a source checkout (absent in a wheel)
SOURCE_NPM_DIR = _PKG.parents[1] / 'web_export'

# the headers every response must carry (serve.py sends the same; Netlify/Cloudflare syntax)
HEADERS_FILE = f"""\
/*
  Content-Security-Policy: {CSP}
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  Cross-Origin-Resource-Policy: same-origin
  X-Content-Type-Options: nosniff
  Referrer-Policy: no-referrer
"""


README_FILE = """\
napari-heartbox web app: finds the heart sector of a chest CT in this browser (WebAssembly).

Browsers refuse to run it from file://, so serve this folder over HTTP on this computer:

    python serve.py            (Python 3, no packages needed; or: napari-heartbox serve-web .)

then open http://127.0.0.1:8000/ . serve.py sends the headers the app relies on, on every response:
the Content-Security-Policy (nothing but this origin, also for the Web Workers, which the pages'
<meta> tags do not govern) and COOP/COEP (several threads). `_headers` lists them for static
hosts (Netlify, Cloudflare Pages); any other host must send the same.

index.html         the app (pick or drop a DICOM series; compressed ones are decoded here too)
speed.html         latency per batch size, 1 vs N threads
example-host.html  how a page embeds it: findHeartSector() from heartbox.js + the heartbox:sector event
bundle.json        every file with its SHA-256; heartbox.config.json: model hash and post-processing
"""


class WebExportError(HeartboxError):
    """The web bundle cannot be written (missing runtime files, model...)."""


def vendor_dir() -> Path:
    """Folder holding the browser runtime files (onnxruntime-web & co).

    Uses the package's ``web/vendor/``; in a source checkout where it is
    missing but ``web_export/node_modules`` exists, runs
    ``node web_export/build.mjs`` once to fill it.

    Raises
    ------
    WebExportError
        If neither exists (with the command that fixes it).
    """
    if (VENDOR_DIR / 'manifest.json').is_file():
        return VENDOR_DIR
    nm = SOURCE_NPM_DIR / 'node_modules'
    if nm.is_dir() and (SOURCE_NPM_DIR / 'build.mjs').is_file():
        node = shutil.which('node')
        if node is None:
            raise WebExportError(
                f'{VENDOR_DIR} is missing and node is not installed to build it '
                f'from {nm}; run "make web-vendor" on a machine with Node.js'
            )
        r = subprocess.run(
            [node, 'build.mjs'], cwd=SOURCE_NPM_DIR, capture_output=True, text=True
        )
        if r.returncode == 0 and (VENDOR_DIR / 'manifest.json').is_file():
            return VENDOR_DIR
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise WebExportError(
            f'building {VENDOR_DIR} from {nm} failed: {msg[-1] if msg else "unknown error"}'
        )
    raise WebExportError(
        f'the browser runtime files are missing ({VENDOR_DIR} does not exist and '
        f'there is no {nm}); run "make web-vendor" (needs Node.js and npm) or '
        'install a napari-heartbox wheel that includes them'
    )


def build_config(
    model_path: Path, card: dict, vendor_manifest: dict | None = None
) -> dict:
    """The ``heartbox.config.json`` the browser app reads.

    Parameters
    ----------
    model_path : Path
        The ONNX file that is copied into the bundle.
    card : dict
        The model card (``heartbox.card.json``); its ``postprocess`` section
        holds thresholds and margins, used verbatim by ``postprocess.js``.
    vendor_manifest : dict, optional
        ``vendor/manifest.json`` (runtime versions).
    """
    vendor_manifest = vendor_manifest or {}
    sha = sha256_file(model_path)
    card_sha = card.get('sha256') or card.get('model_sha256')
    if card_sha and card_sha != sha:
        raise WebExportError(
            f'{model_path} does not match its model card (SHA-256 {sha[:12]}... '
            f'vs {str(card_sha)[:12]}... in the card)'
        )
    if 'postprocess' not in card:
        raise WebExportError(
            f'the model card for {model_path} has no "postprocess" section'
        )
    # input/output names from the card ('inputs'/'outputs' lists), else the contract's
    inputs = card.get('inputs') or [{}, {}]  # no list: the contract's hu + context
    outputs = card.get('outputs') or [{}]
    return {
        'schema': CONFIG_SCHEMA,
        'sector_schema': SCHEMA_ID,
        'model': {
            'file': 'heartbox.onnx',
            'sha256': sha,
            'bytes': model_path.stat().st_size,
            'input': inputs[0].get('name', 'hu'),
            # int64 [M, 3]: the z-context rows (zschedule.js gatherRows); None for a
            # per-slice graph with the one input hu
            'context': inputs[1].get('name', 'context') if len(inputs) > 1 else None,
            'output': outputs[0].get('name', 'prob'),
            'grid': 64,
        },
        'postprocess': card['postprocess'],
        'runtime': {
            'onnxruntime_web': vendor_manifest.get('onnxruntime_web'),
            'dicom_parser': vendor_manifest.get('dicom_parser'),
            'uplot': vendor_manifest.get('uplot'),
            # slices per onnxruntime run: bounds the wasm heap (64 x 512^2 int16 = 32 MiB in,
            # ~4x that as float inside the graph); 64 amortises the per-run overhead
            'chunk_slices': 64,
        },
    }


def export_web(
    outdir, *, model_path=None, card_path=None, overwrite: bool = True
) -> Path:
    """Write a self-contained static browser bundle into ``outdir``.

    Parameters
    ----------
    outdir : str or Path
        Target folder (created). Existing bundle files are replaced; other
        files in it are left alone.
    model_path, card_path : str or Path, optional
        ONNX model (or a model folder holding ``heartbox.onnx``) and its card; default: the package's bundled
        ``model/assets/heartbox.onnx`` and ``heartbox.card.json``.
    overwrite : bool
        If False, refuse a non-empty ``outdir``.

    Returns
    -------
    Path
        ``outdir/index.html``.

    Raises
    ------
    WebExportError
        Missing runtime files, a missing model, or a model that does not
        match its card (one-line message).
    """
    outdir = Path(outdir).expanduser().resolve()
    model_path = Path(model_path) if model_path else MODEL_ASSETS / ONNX_NAME
    if model_path.is_dir():  # a model folder (e.g. written by `napari-heartbox finetune --out`)
        model_path = model_path / ONNX_NAME
    card_path = Path(card_path) if card_path else model_path.with_name(CARD_NAME)
    if not model_path.is_file():
        raise WebExportError(f'model file {model_path} not found')
    try:
        card = load_card(card_path)  # the one card reader: JSON + required keys
    except ModelError as e:
        raise WebExportError(str(e)) from None
    build_config(
        model_path, card
    )  # checks the model against its card before anything else
    vendor = vendor_dir()
    manifest = json.loads((vendor / 'manifest.json').read_text(encoding='utf-8'))
    config = build_config(model_path, card, manifest)

    if outdir.exists() and not outdir.is_dir():
        raise WebExportError(f'{outdir} exists and is not a folder')
    if not overwrite and outdir.is_dir() and any(outdir.iterdir()):
        raise WebExportError(f'{outdir} is not empty')
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for src in sorted(APP_DIR.iterdir()):
            if src.is_file():
                shutil.copyfile(src, outdir / src.name)
        if (outdir / 'vendor').exists():
            shutil.rmtree(outdir / 'vendor')
        shutil.copytree(vendor, outdir / 'vendor')
        shutil.copyfile(model_path, outdir / 'heartbox.onnx')
        shutil.copyfile(_PKG / 'serve.py', outdir / 'serve.py')
        (outdir / '_headers').write_text(HEADERS_FILE, encoding='utf-8')
        (outdir / 'README.txt').write_text(README_FILE, encoding='utf-8')
        (outdir / 'heartbox.config.json').write_text(
            json.dumps(config, indent=2) + '\n', encoding='utf-8'
        )
        files = {
            p.relative_to(outdir).as_posix(): {
                'bytes': p.stat().st_size,
                'sha256': sha256_file(p),
            }
            for p in sorted(outdir.rglob('*'))
            if p.is_file() and p.name != 'bundle.json'
        }
        bundle = {
            'generator': 'napari-heartbox export-web',
            'model_sha256': config['model']['sha256'],
            'total_bytes': sum(f['bytes'] for f in files.values()),
            'files': files,
        }
        (outdir / 'bundle.json').write_text(
            json.dumps(bundle, indent=2) + '\n', encoding='utf-8'
        )
    except OSError as e:
        raise WebExportError(f'cannot write the web bundle to {outdir}: {e}') from None
    return outdir / 'index.html'
