"""Peak resident memory (RSS) of folder → Sector, measured in a fresh subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ['peak_rss_folder_to_sector', 'cli_cold_start']

_CHILD = r"""
import json, sys, time


def hwm_mib():
    # VmHWM = peak RSS of this process image (reset at exec, unlike ru_maxrss,
    # which Linux carries over from the forking parent)
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024.0


t0 = time.perf_counter()
from napari_heartbox import load_ct, propose
from napari_heartbox.errors import ModelError
from napari_heartbox.io import open_ct
from napari_heartbox.model import HeartModel
t_imp = time.perf_counter() - t0
rss_imports = hwm_mib()
mode = sys.argv[1]  # 'whole': load_ct + propose (napari); 'propose': open_ct + propose (CLI)
vol = load_ct(sys.argv[2]) if mode == 'whole' else open_ct(sys.argv[2])
nbytes = 2 * vol.shape[0] * vol.shape[1] * vol.shape[2]
try:
    model = HeartModel(sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else None
    s = propose(vol, model=model)
    found = s.found
    err = None
except ModelError as e:
    found, err = None, str(e)
print(json.dumps({
    'peak_rss_mib': hwm_mib(),
    'rss_after_imports_mib': rss_imports,
    'volume_mib': nbytes / 2**20,
    'imports_s': t_imp,
    'wall_s': time.perf_counter() - t0,
    'found': found,
    'model_error': err,
}))
"""


def peak_rss_folder_to_sector(folder: Path, model_path=None, card_path=None) -> dict:
    """Peak RSS of folder → Sector in a fresh interpreter, both ways.

    The top level is ``load_ct(folder)`` + ``propose`` (the whole volume, as
    napari holds it); ``propose_path`` is ``open_ct(folder)`` + ``propose``
    (the CLI: only the scored slices are read). The child's ``VmHWM`` (Linux
    peak RSS) covers the whole process, interpreter and imports included. The
    bar (issue 6) is ``volume + 300 MB``.
    """
    d = _peak_rss('whole', folder, model_path, card_path)
    if 'error' not in d:
        d['propose_path'] = _peak_rss('propose', folder, model_path, card_path)
    return d


def _peak_rss(mode: str, folder: Path, model_path=None, card_path=None) -> dict:
    r = subprocess.run(
        [sys.executable, '-c', _CHILD, mode, str(folder)]
        + ([str(model_path), str(card_path)] if model_path else []),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        return {'error': (r.stderr.strip().splitlines() or ['child failed'])[-1]}
    d = json.loads(r.stdout.strip().splitlines()[-1])
    d = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}
    d['bar_mib'] = round(d['volume_mib'] + 300 * 1e6 / 2**20, 1)
    d['within_bar'] = d['peak_rss_mib'] <= d['bar_mib']
    return d


def cli_cold_start(folder: Path, repeats: int) -> dict:
    """Wall time of ``napari-heartbox propose FOLDER --json`` as a fresh process (imports included)."""
    import time

    from ._timing import stats

    cmd = [sys.executable, '-m', 'napari_heartbox', 'propose', str(folder), '--json']
    samples, last = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        last = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        samples.append(time.perf_counter() - t0)
        if last.returncode != 0:
            return {'error': (last.stderr.strip().splitlines() or ['failed'])[-1]}
    return stats(samples)
