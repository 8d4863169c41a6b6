"""PNG plots of the batch-size curves (matplotlib, Agg backend; benchmarks only)."""

from __future__ import annotations

from pathlib import Path

__all__ = ['plot_batch_curves']

_STYLE = {
    'heartbox_1t': ('heartbox graph, Python ORT, 1 thread', '#1f77b4', '-'),
    'heartbox_2t': ('heartbox graph, Python ORT, 2 threads', '#1f77b4', '--'),
    'seed_1t': ('seed-style graph, Python ORT, 1 thread', '#7f7f7f', '-'),
    'seed_2t': ('seed-style graph, Python ORT, 2 threads', '#7f7f7f', '--'),
    'browser_1t': ('heartbox graph, browser wasm, 1 thread', '#d62728', '-'),
    'browser_2t': ('heartbox graph, browser wasm, 2 threads', '#d62728', '--'),
    'browser_seed_1t': ('seed-style graph, browser wasm, 1 thread', '#ff9896', '-'),
    'browser_seed_2t': ('seed-style graph, browser wasm, 2 threads', '#ff9896', '--'),
}


def _series(results: dict) -> dict:
    out = {}
    for name, rows in (results.get('batch_curve') or {}).items():
        if isinstance(rows, list) and rows:
            out[name] = (
                [r['batch'] for r in rows],
                [r['per_batch_s']['median'] * 1000 for r in rows],
                [r['per_frame_ms']['median'] for r in rows],
            )
    browser = results.get('browser') or {}
    for key, prefix in (('speed_page', 'browser'), ('speed_page_seed', 'browser_seed')):
        for run in (browser.get(key) or {}).get('runs', []):
            pts = [p for p in run.get('points', []) if 'error' not in p]
            if not pts:
                continue
            out[f'{prefix}_{run["threads"]}t'] = (
                [p['batch'] for p in pts],
                [p['ms_per_batch'] for p in pts],
                [p['ms_per_frame'] for p in pts],
            )
    return out


def plot_batch_curves(results: dict, out_dir: Path) -> list[Path]:
    """Write ``batch_curve_latency.png`` and ``batch_curve_per_frame.png``; returns the paths."""
    series = _series(results)
    if not series:
        return []
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = results.get('environment', {})
    note = f'{env.get("cpu_count")} CPUs (shared, noisy), onnxruntime {env.get("onnxruntime")}, 512x512 int16 slices'
    paths = []
    for fname, idx, ylabel, title in (
        ('batch_curve_latency.png', 1, 'ms per batch (one run)', 'Latency per batch'),
        ('batch_curve_per_frame.png', 2, 'ms per frame', 'Latency per frame'),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for name, data in series.items():
            label, colour, ls = _STYLE.get(name, (name, None, '-'))
            ax.plot(data[0], data[idx], ls, color=colour, marker='o', ms=3, label=label)
        ax.set_xscale('log', base=2)
        ax.set_yscale('log')
        ax.set_xlabel('batch size (slices per run)')
        ax.set_ylabel(ylabel)
        ax.set_title(f'{title} (median)\n{note}', fontsize=9)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / fname
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths
