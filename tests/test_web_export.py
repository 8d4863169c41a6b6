"""Web export: bundle contents, config from the model card, server headers, CLI.

No browser here (see ``test_web_browser.py``). Tests that need the browser
runtime files skip with a reason when neither ``napari_heartbox/web/vendor``
nor ``web_export/node_modules`` exists (run ``make web-vendor``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from napari_heartbox.web import export as web_export
from napari_heartbox.web.serve import make_server

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / 'napari_heartbox' / 'model' / 'assets' / 'heartbox.onnx'
BUNDLED_CARD = BUNDLED_MODEL.with_name('heartbox.card.json')

# post-processing parameters for the throwaway test model (the real ones come
# from the bundled model card)
TEST_POSTPROCESS = {
    'threshold': 0.5,
    'min_heart_volume_ml': 30.0,
    'default_margin_mm': 0.0,
    'confidence': {'bias': -5.0, 'w_mean_prob': 6.0, 'w_log_volume_ml': 0.4},
}


def vendor_available() -> bool:
    """True when the browser runtime files exist or can be built here."""
    return (web_export.VENDOR_DIR / 'manifest.json').is_file() or (
        (web_export.SOURCE_NPM_DIR / 'node_modules').is_dir()
    )


needs_vendor = pytest.mark.skipif(
    not vendor_available(),
    reason='browser runtime files absent (no napari_heartbox/web/vendor and no '
    'web_export/node_modules): run "make web-vendor"',
)


def write_throwaway_model(folder: Path, size: int = 512) -> tuple[Path, Path]:
    """A tiny stand-in ONNX with the real model's I/O contract (tests only).

    ``hu`` int16 ``[N, size, size]`` → ``prob`` float32 ``[N, 64, 64]`` =
    sigmoid((cell mean HU - 150) / 15): "heart" = cells brighter than 150 HU.
    Written to ``folder`` (a tmp_path), never shipped.
    """
    import onnx
    from onnx import TensorProto, helper

    k = size // 64
    nodes = [
        helper.make_node('Cast', ['hu'], ['f'], to=TensorProto.FLOAT),
        helper.make_node('Unsqueeze', ['f', 'ax1'], ['f4']),
        helper.make_node(
            'AveragePool', ['f4'], ['pool'], kernel_shape=[k, k], strides=[k, k]
        ),
        helper.make_node('Squeeze', ['pool', 'ax1'], ['cell']),
        helper.make_node('Sub', ['cell', 't'], ['d']),
        helper.make_node('Div', ['d', 's'], ['z']),
        helper.make_node('Sigmoid', ['z'], ['prob']),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array([1], np.int64), 'ax1'),
        onnx.numpy_helper.from_array(np.array(150.0, np.float32), 't'),
        onnx.numpy_helper.from_array(np.array(15.0, np.float32), 's'),
    ]
    graph = helper.make_graph(
        nodes,
        'throwaway',
        [helper.make_tensor_value_info('hu', TensorProto.INT16, ['N', size, size])],
        [helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 64, 64])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'heartbox.onnx'
    onnx.save(model, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    card = folder / 'heartbox.card.json'
    card.write_text(
        json.dumps(
            {
                'name': 'throwaway',
                'version': '0',
                'sha256': sha,
                'inputs': [{'name': 'hu', 'dtype': 'int16', 'shape': ['N', 'H', 'W']}],
                'outputs': [{'name': 'prob', 'dtype': 'float32', 'shape': ['N', 64, 64]}],
                'postprocess': TEST_POSTPROCESS,
            }
        )
    )
    return path, card


@pytest.fixture(scope='module')
def throwaway_model(tmp_path_factory):
    return write_throwaway_model(tmp_path_factory.mktemp('throwaway-model'))


@needs_vendor
def test_export_writes_a_self_contained_bundle(tmp_path, throwaway_model):
    model, card = throwaway_model
    index = web_export.export_web(tmp_path / 'bundle', model_path=model, card_path=card)
    out = index.parent
    for name in (
        'index.html',
        'speed.html',
        'example-host.html',
        'worker.js',
        'heartbox.js',
        'postprocess.js',
        'zschedule.js',
        'dicom.js',
        'reader.js',
        'serve.py',
        'heartbox.config.json',
        'README.txt',
        'vendor/ort/ort-wasm-simd-threaded.wasm',
        'vendor/dicom-parser/dicomParser.mjs',
        'vendor/uplot/uPlot.esm.js',
    ):
        assert (out / name).is_file(), name
    # the exact model bytes
    assert (out / 'heartbox.onnx').read_bytes() == model.read_bytes()
    config = json.loads((out / 'heartbox.config.json').read_text())
    assert config['model']['sha256'] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert config['postprocess'] == TEST_POSTPROCESS
    assert config['sector_schema'] == 'heartbox.sector/1'
    assert config['runtime']['onnxruntime_web'].startswith('1.30.')
    bundle = json.loads((out / 'bundle.json').read_text())
    assert bundle['files']['heartbox.onnx']['sha256'] == config['model']['sha256']
    assert bundle['total_bytes'] == sum(f['bytes'] for f in bundle['files'].values())


@needs_vendor
def test_pages_forbid_other_origins(tmp_path, throwaway_model):
    model, card = throwaway_model
    out = web_export.export_web(tmp_path / 'b', model_path=model, card_path=card).parent
    for page in ('index.html', 'speed.html', 'example-host.html'):
        html = (out / page).read_text()
        m = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
        assert m, page
        csp = {d.split()[0]: d.split()[1:] for d in m.group(1).split(';') if d.strip()}
        assert csp['default-src'] == ["'self'"]
        assert csp['connect-src'] == ["'self'"]
        assert "'unsafe-inline'" not in csp['script-src']
        # no absolute URL to another origin anywhere in our sources
        assert not re.search(r'(src|href)="(https?:)?//', html), page
    for js in out.glob('*.js'):
        assert not re.search(r'https?://', js.read_text()), js.name


def test_export_refuses_a_model_that_does_not_match_its_card(tmp_path, throwaway_model):
    model, card = throwaway_model
    bad = json.loads(card.read_text())
    bad['sha256'] = '0' * 64
    bad_card = tmp_path / 'card.json'
    bad_card.write_text(json.dumps(bad))
    with pytest.raises(
        web_export.WebExportError, match='does not match its model card'
    ):
        web_export.export_web(tmp_path / 'b', model_path=model, card_path=bad_card)


def test_missing_runtime_files_give_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(web_export, 'VENDOR_DIR', tmp_path / 'no-vendor')
    monkeypatch.setattr(web_export, 'SOURCE_NPM_DIR', tmp_path / 'no-web_export')
    with pytest.raises(web_export.WebExportError) as e:
        web_export.vendor_dir()
    msg = str(e.value)
    assert 'make web-vendor' in msg and '\n' not in msg


def test_cli_export_web_error_is_one_line(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'napari_heartbox',
            'export-web',
            str(tmp_path / 'o'),
            '--model',
            str(tmp_path / 'missing.onnx'),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count('\n') == 0
    assert 'missing.onnx' in r.stderr and 'Traceback' not in r.stderr


@needs_vendor
def test_cli_export_web_writes_bundle(tmp_path, throwaway_model):
    model, card = throwaway_model
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'napari_heartbox',
            'export-web',
            str(tmp_path / 'o'),
            '--model',
            str(model),
            '--card',
            str(card),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert 'serve-web' in r.stdout
    assert (tmp_path / 'o' / 'index.html').is_file()


@contextlib.contextmanager
def _serving(folder, **kw):
    """``make_server(folder, 0, quiet=True, **kw)`` running in a thread; shut down on exit."""
    server = make_server(folder, 0, quiet=True, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@needs_vendor
def test_server_sends_mime_types_and_isolation_headers(tmp_path, throwaway_model):
    model, card = throwaway_model
    out = web_export.export_web(tmp_path / 'b', model_path=model, card_path=card).parent
    with _serving(out) as server:
        assert server.server_address[0] == '127.0.0.1'
        base = f'http://127.0.0.1:{server.server_port}/'
        expect = {
            'index.html': 'text/html',
            'worker.js': 'text/javascript',
            'vendor/ort/ort.wasm.min.mjs': 'text/javascript',
            'vendor/ort/ort-wasm-simd-threaded.wasm': 'application/wasm',
            'heartbox.config.json': 'application/json',
        }
        for path, ctype in expect.items():
            with urllib.request.urlopen(base + path) as resp:
                assert resp.headers['Content-Type'].startswith(ctype), path
                assert resp.headers['Cross-Origin-Opener-Policy'] == 'same-origin'
                assert resp.headers['Cross-Origin-Embedder-Policy'] == 'require-corp'


def test_server_headers_listings_hosts_and_bad_paths(tmp_path):
    """Issue 18: the CSP is an HTTP header on every response (it governs workers, which a
    <meta> tag does not); no directory listings; only loopback Host names (DNS rebinding);
    a NUL in the path is a 400, not a traceback in the server thread."""
    import http.client

    from napari_heartbox.web.serve import CSP

    (tmp_path / 'index.html').write_text('<!doctype html><title>x</title>')
    (tmp_path / 'worker.js').write_text('self.onmessage = () => {};')
    (tmp_path / 'vendor').mkdir()
    (tmp_path / 'vendor' / 'a.js').write_text('//')

    def get(path, host=None):
        c = http.client.HTTPConnection('127.0.0.1', server.server_port, timeout=10)
        c.putrequest('GET', path, skip_host=host is not None)
        if host is not None:
            c.putheader('Host', host)
        c.endheaders()
        r = c.getresponse()
        r.read()
        c.close()
        return r

    with _serving(tmp_path) as server:
        for path in ('/index.html', '/worker.js', '/vendor/a.js'):
            r = get(path)
            assert r.status == 200, path
            assert r.headers['Content-Security-Policy'] == CSP
            assert "connect-src 'self'" in CSP and "worker-src 'self'" in CSP
            assert "frame-ancestors 'self'" in CSP
            assert r.headers['Cross-Origin-Resource-Policy'] == 'same-origin'
        assert get('/vendor/').status == 404  # no listing
        assert get('/index.html', host='evil.example:80').status == 400
        assert get('/index.html', host=f'localhost:{server.server_port}').status == 200
        assert get('/index.html%00.js').status == 400
        assert get('/index.html').status == 200  # the server still answers


def test_server_refuses_a_folder_without_a_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match='export-web'):
        make_server(tmp_path, 0)
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'napari_heartbox',
            'serve-web',
            str(tmp_path),
            '--port',
            '0',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        r.returncode == 2
        and 'no index.html' in r.stderr
        and 'Traceback' not in r.stderr
    )


@needs_vendor
@pytest.mark.parametrize('how', ['standalone serve.py', 'napari-heartbox serve-web'])
def test_serving_a_bundle_from_the_command_line(tmp_path, throwaway_model, how):
    model, card = throwaway_model
    out = web_export.export_web(tmp_path / 'b', model_path=model, card_path=card).parent
    if (
        how == 'standalone serve.py'
    ):  # the copy inside the bundle, run without the package
        cmd = [sys.executable, '-I', str(out / 'serve.py'), '--port', '0']
    else:
        cmd = [
            sys.executable,
            '-m',
            'napari_heartbox',
            'serve-web',
            str(out),
            '--port',
            '0',
        ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r'http://127\.0\.0\.1:(\d+)/', line)
        assert m, line
        with urllib.request.urlopen(
            f'http://127.0.0.1:{m.group(1)}/index.html'
        ) as resp:
            assert b'Content-Security-Policy' in resp.read()
            assert resp.headers['Cross-Origin-Embedder-Policy'] == 'require-corp'
        with urllib.request.urlopen(
            f'http://127.0.0.1:{m.group(1)}/heartbox.onnx'
        ) as resp:
            assert resp.read() == model.read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_no_isolation_leaves_coop_coep_off(tmp_path):
    """``--no-isolation``: no COOP/COEP (single-threaded app), the other headers stay."""
    (tmp_path / 'index.html').write_text('<!doctype html><title>t</title>')
    for isolate in (True, False):
        with _serving(tmp_path, isolate=isolate) as server, urllib.request.urlopen(
            f'http://127.0.0.1:{server.server_port}/index.html'
        ) as resp:
            h = resp.headers
            assert (h['Cross-Origin-Opener-Policy'] == 'same-origin') is isolate
            assert (h['Cross-Origin-Embedder-Policy'] == 'require-corp') is isolate
            assert h['Cross-Origin-Resource-Policy'] == 'same-origin'
            assert h['X-Content-Type-Options'] == 'nosniff'


def test_port_in_use_is_a_one_line_error(tmp_path, capsys):
    import socket

    from napari_heartbox.cli import main

    (tmp_path / 'index.html').write_text('<!doctype html><title>t</title>')
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(['serve-web', str(tmp_path), '--port', str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('napari-heartbox: error: cannot serve') and f'port {port}' in err
    assert '\n' not in err
