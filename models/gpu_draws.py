"""``python -m models.gpu_draws``: many training draws of one recipe at once, on one GPU.

Builds the training phantoms' cache with many worker processes, then trains
one network per torch seed, all seeds concurrently (one process each, sharing
the GPU), and exports each as a candidate ``OUT/seed_<s>/heartbox.onnx`` with a
copy of the bundled card (the same candidates as :mod:`models.seed_study`
writes). Nothing is scored here: score the candidates on a CPU machine with
``python -m models.threshold_study OUT/seed_*`` (validation phantoms and real
scans), as round 8 did (``models/EXPERIMENTS.md``).

GPU draws are exploration, not the product: the committed model is trained on
the CPU (``make train``), whose bytes a GPU does not reproduce, and in round 8
GPU draws scored lower on the non-contrast real scan than CPU draws of the
same recipe.

Example (the round-8 runs on an H100, ~6 min each including the phantoms)::

    python -m models.gpu_draws --seeds 0 1 2 3 4 5 6 7 8 9 10 11 --workers 15 --out /tmp/draws
    python -m models.gpu_draws --train-cases 960 --seeds 0 1 2 3 4 5 6 7 --out /tmp/draws960
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from models.train import ROOT, TRAIN_SEED0, log


def _train_one(args) -> None:
    """One draw (run in its own process): train and export ``OUT/seed_<s>``."""
    from models import data
    from models.seed_study import _candidate
    from models.train import train_net

    seeds = range(TRAIN_SEED0, TRAIN_SEED0 + args.train_cases)
    x_all, y_all = data.load_training_arrays(seeds)
    log(f'seed {args.one}: {len(x_all)} training slices')
    net = train_net(x_all, y_all, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.one,
                    threads=1, device=args.device, log_every=1000)
    log(f'seed {args.one}: exported {_candidate(net, Path(args.out) / f"seed_{args.one}")}')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=list(range(8)), help='torch seeds, one draw each')
    ap.add_argument('--train-cases', type=int, default=480)
    ap.add_argument('--steps', type=int, default=6000)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=4e-3)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--workers', type=int, default=8, help='phantom generation processes')
    ap.add_argument('--out', default=str(ROOT / 'models' / 'runs' / 'gpu_draws'))
    ap.add_argument('--one', type=int, default=None, help=argparse.SUPPRESS)  # internal: one draw
    args = ap.parse_args(argv)
    if args.one is not None:
        _train_one(args)
        return 0

    from models import data

    t0 = time.perf_counter()
    data.build_cache(range(TRAIN_SEED0, TRAIN_SEED0 + args.train_cases), workers=args.workers, log=log)
    log(f'phantom cache ready in {time.perf_counter() - t0:.0f} s; training {len(args.seeds)} draws')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ['--train-cases', str(args.train_cases), '--steps', str(args.steps), '--batch', str(args.batch),
              '--lr', str(args.lr), '--device', args.device, '--out', str(out)]
    procs = {}
    for s in args.seeds:
        with open(out / f'train_{s}.log', 'w') as fh:
            procs[s] = subprocess.Popen([sys.executable, '-m', 'models.gpu_draws', '--one', str(s), *common],
                                        cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    failed = [s for s, p in procs.items() if p.wait() != 0]
    log(f'{len(procs) - len(failed)} draws in {out} after {time.perf_counter() - t0:.0f} s'
        + (f'; failed: seeds {failed} (see {out}/train_<seed>.log)' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())
