"""The review gallery of a batch run: ``OUTDIR/index.html``.

One static page, no script, no outside request (its Content-Security-Policy
allows images from its own folder only): a card per series with the
thumbnail (axial / coronal / sagittal through the box), the confidence and
the box, linking to the series' sector file. Failed series come first, then
the lowest confidence: the cases a reviewer should look at before the rest.
Open the same folder in the napari worklist to correct a box.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from ._atomic import atomic_write_text

__all__ = ['gallery_order', 'write_gallery']

_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;background:#111;color:#ddd}
h1{font-size:1.3em;margin:0 0 .3em} p.sum{margin:0 0 1em;color:#aaa}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
article{background:#1c1c1c;border:1px solid #333;border-radius:6px;padding:8px}
article.failed{border-color:#a33} article.none{border-color:#665}
img{width:100%;height:auto;display:block;background:#000;image-rendering:auto}
h2{font-size:1em;margin:.3em 0;word-break:break-all} a{color:#8cf}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:.3em 0}
dt{color:#999} dd{margin:0;word-break:break-all} .err{color:#f88} .warn{color:#db8}
"""


def gallery_order(rows: list[dict]) -> list[dict]:
    """Failed series first, then by confidence, lowest first (ties by case)."""
    def key(r):
        failed = r.get('status') != 'done'
        conf = r.get('confidence')
        return (not failed, conf if conf is not None else -1.0, r.get('case') or '')

    return sorted(rows, key=key)


def _href(rel: str) -> str:
    return html.escape(quote(rel), quote=True)


def _card(r: dict) -> str:
    e = html.escape
    failed = r.get('status') != 'done'
    cls = 'failed' if failed else ('' if r.get('found') else 'none')
    parts = [f'<article class="{cls}">']
    if r.get('thumbnail'):
        parts.append(f'<img src="{_href(r["thumbnail"])}" alt="{e(r["case"])}: axial, coronal '
                     'and sagittal through the box" loading="lazy">')
    title = e(r['case'])
    if r.get('sector_file'):
        title = f'<a href="{_href(r["sector_file"])}">{title}</a>'
    parts.append(f'<h2>{title}</h2><dl>')
    parts.append(f'<dt>source</dt><dd>{e(str(r.get("source")))}</dd>')
    if failed:
        parts.append(f'<dt>error</dt><dd class="err">{e(str(r.get("error")))}</dd>')
    else:
        conf = r.get('confidence')
        parts.append(f'<dt>confidence</dt><dd>{conf:.2f}</dd>' if conf is not None else '')
        if r.get('found'):
            size = [r['lps_max_' + a] - r['lps_min_' + a] for a in 'xyz']
            parts.append('<dt>box</dt><dd>'
                         f'{size[0]:.0f} × {size[1]:.0f} × {size[2]:.0f} mm (x × y × z), '
                         f'{r.get("volume_ml") or 0:.0f} ml; voxels z [{r["z0"]}, {r["z1"]})</dd>')
        else:
            parts.append('<dt>box</dt><dd>no heart found</dd>')
        parts.append(f'<dt>slices</dt><dd>{r.get("slices_read")} of {r.get("n_slices")} read</dd>')
    for w in r.get('warnings') or []:
        parts.append(f'<dt>warning</dt><dd class="warn">{e(w)}</dd>')
    parts.append('</dl></article>')
    return ''.join(parts)


def write_gallery(out, rows: list[dict], *, n_series: int, n_skipped: int,
                  seconds: float) -> Path:
    """Write ``out/index.html`` for the finished ``rows`` (results-table rows).

    Parameters
    ----------
    out : Path
        The batch output folder (the thumbnails and sector files are in it).
    rows : list of dict
        Rows of the series finished so far (an interrupted run shows those).
    n_series, n_skipped : int
        Series found, and entries skipped (``skipped.csv``), for the summary.
    seconds : float
        Duration of this run.
    """
    out = Path(out)
    ordered = gallery_order(rows)
    n_failed = sum(r.get('status') != 'done' for r in rows)
    n_found = sum(bool(r.get('found')) for r in rows if r.get('status') == 'done')
    summary = (f'{len(rows)} of {n_series} series boxed or failed: {n_found} with a heart box, '
               f'{len(rows) - n_failed - n_found} without, {n_failed} failed '
               f'(failures.csv); {n_skipped} skipped (skipped.csv). This run: {seconds:.1f} s. '
               'Lowest confidence first. To correct a box, open this folder in napari: '
               'Plugins › Heart Sector › Heart sector worklist, corrections folder = this folder.')
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<title>napari-heartbox batch review</title>'
        f'<style>{_STYLE}</style></head><body>'
        '<h1>Heart boxes: review</h1>'
        f'<p class="sum">{html.escape(summary)}</p><main>'
        + '\n'.join(_card(r) for r in ordered)
        + '</main></body></html>\n'
    )
    return atomic_write_text(out / 'index.html', page)
