"""``python -m benchmarks.jupyter_widget``: how fast a SectorWidget opens in JupyterLab (issue 22).

Starts JupyterLab on 127.0.0.1 (the same way as ``tests/test_jupyter_browser.py``) with a
notebook that builds a ``--slices`` x 512 x 512 volume and shows a ``SectorWidget`` over it, then
in Chromium (Debian chromium, headless) times, ``--repeats`` times, from pressing Shift+Enter on
the cell that shows the widget to the page having drawn its three views
(``data-ready`` and the axial box drawn). The volume is made in an earlier cell, so its making is
not timed; the widget's preview (windowing, sampling), the transfer through the kernel's
websocket and the page's first drawing are. Also reports the preview's bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

MAKE = '''\
import numpy as np
from napari_heartbox.volume import CTVolume
from napari_heartbox.sector import Sector
hu = np.full(({n}, 512, 512), -1000, np.int16)
hu[:, 96:416, 64:448] = 40            # a body
hu[{n} // 3 : 2 * {n} // 3, 180:330, 200:360] = 300   # a bright "heart"
vol = CTVolume.from_array(hu, spacing=(0.7, 0.7, 0.7))
box = Sector(vol.grid, ({n} // 3, 2 * {n} // 3), (180, 330), (200, 360))
'''
SHOW = '''\
from napari_heartbox.jupyter import SectorWidget
w = SectorWidget(vol, box)
print('preview bytes', len(w.preview))
w
'''


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--slices', type=int, default=700)
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))
    import test_jupyter_browser as t

    from benchmarks._browser import CHROMIUM, LAUNCH_ARGS

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with t.jupyterlab_server(root, notebook_cell=None) as base:
            nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [],
                             'source': MAKE.format(n=args.slices)}]
                  + [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [],
                      'source': SHOW} for _ in range(args.repeats)],
                  'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3',
                                              'language': 'python'}},
                  'nbformat': 4, 'nbformat_minor': 5}
            (root / 'bench.ipynb').write_text(json.dumps(nb))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=['--headless', *LAUNCH_ARGS])
                page = browser.new_page(viewport={'width': 1400, 'height': 1000})
                page.goto(f'{base}/lab/tree/bench.ipynb?token={t.TOKEN}', timeout=120_000)
                t.wait_for_kernel(page)
                cells = page.locator('.jp-Notebook .jp-Cell .cm-content')
                cells.nth(0).click()
                page.keyboard.press('Shift+Enter')  # make the volume (not timed)
                page.wait_for_function(
                    "() => /\\[1\\]/.test(document.querySelector('.jp-Notebook .jp-Cell .jp-InputPrompt')"
                    ".textContent)", timeout=300_000)
                for k in range(args.repeats):
                    cells.nth(k + 1).click()
                    t0 = time.perf_counter()
                    page.keyboard.press('Shift+Enter')
                    page.wait_for_function(
                        f"() => document.querySelectorAll('.heartbox-widget[data-ready=\"1\"] "
                        f"canvas[data-view=\"axial\"][data-rect]').length >= {k + 1}", timeout=300_000)
                    times.append(time.perf_counter() - t0)
                browser.close()
    n = args.slices
    preview = (n // max(1, -(-n * 65536 // 24_000_000))) * 256 * 256
    print(f'{n} x 512 x 512 volume: SectorWidget shown in {statistics.median(times):.2f} s '
          f'(median of {len(times)}: {", ".join(f"{x:.2f}" for x in times)}); '
          f'preview about {preview / 1e6:.1f} MB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
