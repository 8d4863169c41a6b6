"""Serve an exported heartbox web bundle on 127.0.0.1 (standard library only).

The exporter copies this very file into every bundle as ``serve.py``, so a
bundle can be served without napari-heartbox installed::

    python serve.py [--port 8000]          # inside the bundle folder
    napari-heartbox serve-web BUNDLE [--port 8000]

Why a custom server: browsers refuse ES modules and workers from ``file://``;
onnxruntime-web needs ``.wasm`` served as ``application/wasm`` and ``.mjs`` as
JavaScript; and it can only use several threads when the page is
cross-origin isolated, i.e. served with ``Cross-Origin-Opener-Policy:
same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``. The server
binds to the loopback interface only and never writes anything.

The no-upload promise is enforced by HTTP headers on every response (pages,
scripts, workers, wasm), not only by the pages' ``<meta>`` tags, which do
not govern Web Workers: :data:`CSP` (``connect-src``/``worker-src 'self'``,
``frame-ancestors 'self'``), COOP/COEP/CORP, ``nosniff``. Also: no
directory listings (404), only ``Host: 127.0.0.1|localhost[:port]`` (DNS
rebinding; other hosts get 400), a bad path (e.g. ``%00``) is a 400, and
idle connections time out after :data:`TIMEOUT_S` seconds.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path

__all__ = ['CSP', 'MIME_TYPES', 'TIMEOUT_S', 'make_server', 'serve', 'main']

#: Content-Security-Policy of every response: nothing but this origin, wasm allowed to
#: compile, embeddable only by pages of this origin
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "connect-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
#: seconds an idle connection is kept (a silent client no longer holds a thread forever)
TIMEOUT_S = 30
_LOCAL_HOSTS = ('127.0.0.1', 'localhost')

#: Extensions whose MIME type must not depend on the system mime table.
MIME_TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.json': 'application/json',
    '.wasm': 'application/wasm',
    '.onnx': 'application/octet-stream',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.md': 'text/plain; charset=utf-8',
    '.py': 'text/plain; charset=utf-8',
    '': 'application/octet-stream',
}


class BundleRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with explicit MIME types and cross-origin isolation."""

    extensions_map = MIME_TYPES
    isolate = True  # send COOP/COEP (threads in onnxruntime-web)
    quiet = False
    timeout = TIMEOUT_S  # socket timeout of each connection

    def end_headers(self):
        self.send_header('Content-Security-Policy', CSP)
        self.send_header('Referrer-Policy', 'no-referrer')
        if self.isolate:
            self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
            self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
        self.send_header('Cross-Origin-Resource-Policy', 'same-origin')
        self.send_header('X-Content-Type-Options', 'nosniff')
        # revalidate every time (304 when unchanged): a re-exported bundle is seen at
        # once, and Chromium can keep its compiled-wasm cache between visits
        self.send_header('Cache-Control', 'no-cache')
        super().end_headers()

    def parse_request(self):
        if not super().parse_request():
            return False
        host = (self.headers.get('Host') or '').strip().lower()
        name = host.rsplit(':', 1)[0] if host.count(':') <= 1 else host
        if name not in _LOCAL_HOSTS:  # DNS rebinding: a page of another site on our port
            self.send_error(400, 'Host must be 127.0.0.1 or localhost')
            return False
        return True

    def send_head(self):
        try:
            return super().send_head()
        except ValueError:  # e.g. a NUL byte (%00) in the path
            self.send_error(400, 'Bad path')
            return None

    def list_directory(self, path):  # noqa: ARG002 - stdlib signature
        self.send_error(404, 'Not found')  # no directory listings
        return None

    def guess_type(self, path):
        suffix = Path(str(path)).suffix.lower()
        return MIME_TYPES.get(suffix) or super().guess_type(path)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if not self.quiet:
            super().log_message(format, *args)


class _QuietServer(http.server.ThreadingHTTPServer):
    """Threading server that ignores clients hanging up mid-response."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(
            exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
        ):
            return  # the browser cancelled a request (navigation, closed page)
        super().handle_error(request, client_address)


def make_server(
    directory, port: int = 8000, *, isolate: bool = True, quiet: bool = False
) -> http.server.ThreadingHTTPServer:
    """Create (but do not start) a server for ``directory`` on 127.0.0.1.

    Parameters
    ----------
    directory : str or Path
        The exported bundle folder (must contain ``index.html``).
    port : int
        TCP port; 0 picks a free one (read it from ``server.server_port``).
    isolate : bool
        Send COOP/COEP so the page is cross-origin isolated (threads).
    quiet : bool
        Do not log each request to stderr.

    Returns
    -------
    http.server.ThreadingHTTPServer
        Call ``serve_forever()`` (or run it in a thread) and ``shutdown()``.
    """
    directory = Path(directory).resolve()
    if not (directory / 'index.html').is_file():
        raise FileNotFoundError(
            f'{directory} is not a heartbox web bundle (no index.html); '
            'create one with: napari-heartbox export-web OUTDIR'
        )
    handler = type(
        'Handler', (BundleRequestHandler,), {'isolate': isolate, 'quiet': quiet}
    )
    handler = functools.partial(handler, directory=str(directory))
    return _QuietServer(('127.0.0.1', int(port)), handler)


def serve(directory, port: int = 8000, *, isolate: bool = True) -> None:
    """Serve ``directory`` on ``http://127.0.0.1:PORT/`` until Ctrl-C."""
    server = make_server(directory, port, isolate=isolate)
    url = f'http://127.0.0.1:{server.server_port}/'
    print(f'Serving {Path(directory).resolve()} at {url}  (Ctrl-C to stop)')
    print(
        f'  app: {url}index.html   speed test: {url}speed.html   '
        f'embedding example: {url}example-host.html',
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv=None) -> int:
    """Command line of the standalone ``serve.py`` copied into bundles."""
    p = argparse.ArgumentParser(description='Serve a heartbox web bundle on 127.0.0.1.')
    p.add_argument('directory', nargs='?', default=str(Path(__file__).resolve().parent))
    p.add_argument('--port', type=int, default=8000)
    p.add_argument(
        '--no-isolation',
        action='store_true',
        help='do not send COOP/COEP (onnxruntime-web then uses 1 thread)',
    )
    a = p.parse_args(argv)
    try:
        serve(a.directory, a.port, isolate=not a.no_isolation)
    except (FileNotFoundError, OSError) as e:
        print(f'serve: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
