"""Fine-tune the heart model on corrected boxes (``napari-heartbox finetune``).

A corrected box is a weak label: it says where the heart's extent ends, not
which cells are heart. The loss uses what a tight box does say, at the
network's 64×64 cells (``docs/model.md`` §2; cell ``(r, c)`` covers pixel rows
``[r·kH, (r+1)·kH)`` and columns ``[c·kW, (c+1)·kW)``):

* **nothing outside the box**: every cell of a slice outside the box's z range,
  and every cell entirely outside its in-plane rectangle, has target 0;
* **projections fill the box** (the box is the extent of the heart): for every
  cell row entirely inside the box's y range, the largest logit over the
  box's slices and columns has target 1; the same for every column, and for
  every slice of the box (not its two end slices) the largest logit over
  its rectangle. Cells cut by a face are left out of both terms.

plus **replay** of fully labelled phantom slices (the training generator,
:func:`napari_heartbox.phantom.make_phantom`) so the model does not forget
what it knew. BatchNorm statistics stay those of the base model (its
folded graph is rebuilt exactly by :func:`.from_onnx.net_from_onnx`).

The report (:func:`cross_validate`) scores boxes on cases the model being
scored did not train on: k-fold over the given cases (leave-one-out for
five cases or fewer), the base model against the fold's fine-tuned model.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_heartbox.errors import HeartboxError

REPLAY_SEED0 = 900_000  # phantom seeds of the replay set (outside every training/test range)
MAX_BOX_SLICES = 96  # box slices kept per case (every k-th beyond this)
OUTSIDE_SLICES = 24  # slices outside the box per case: half within 40 mm of it, half anywhere
OUTSIDE_NEAR_MM = 40.0


@dataclass
class BoxCase:
    """One corrected case at the network's cells.

    ``cells`` float32 ``[S, 3, 64, 64]`` (context cells of the kept slices),
    ``in_z`` bool ``[S]`` (slice inside the box), ``z_core`` bool ``[S]``
    (inside and not an end slice), ``rows`` / ``cols`` int8 ``[64]``: 1 cell
    entirely inside the box's range, 0 entirely outside, -1 cut by a face.
    """

    case: str
    cells: np.ndarray
    in_z: np.ndarray
    z_core: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    found: bool


def _cell_flags(lo: int, hi: int, k: int, n_pixels: int) -> np.ndarray:
    """Per cell of one axis: 1 inside ``[lo, hi)`` pixels, 0 outside, -1 cut."""
    from napari_heartbox.model.postprocess import CELLS

    start = np.arange(CELLS) * k
    stop = start + k
    flags = np.full(CELLS, -1, np.int8)
    flags[(start >= lo) & (stop <= hi)] = 1
    flags[(stop <= lo) | (start >= hi) | (start >= n_pixels)] = 0
    return flags


def box_case(case_id: str, volume, box, postprocess: dict, sess, rng: np.random.Generator) -> BoxCase:
    """Cells and box targets of one corrected case (slices as in the module docstring)."""
    from napari_heartbox.model.postprocess import cell_size
    from napari_heartbox.model.zschedule import context_offset, context_rows

    from .cells import run_prep

    nz, h, w = volume.shape
    dz = float(volume.spacing[0])
    z = np.arange(nz)
    if box.found:
        (z0, z1), (y0, y1), (x0, x1) = box.ranges
        inside = z[(z >= z0) & (z < z1)]
        if inside.size > MAX_BOX_SLICES:
            inside = inside[:: math.ceil(inside.size / MAX_BOX_SLICES)]
        near = int(round(OUTSIDE_NEAR_MM / dz))
        out_near = z[((z >= z0 - near) & (z < z0)) | ((z >= z1) & (z < z1 + near))]
        out_any = z[(z < z0) | (z >= z1)]
    else:
        inside = z[:0]
        out_near = out_any = z
    picks = [inside]
    for pool in (out_near, out_any):
        if pool.size:
            picks.append(rng.choice(pool, min(pool.size, OUTSIDE_SLICES // 2), replace=False))
    idx = np.unique(np.concatenate(picks)).astype(np.int64)
    rows = context_rows(idx, nz, context_offset(dz, postprocess))
    cells = run_prep(sess, volume.hu, rows)
    kh, kw = cell_size(h, w)
    if box.found:
        in_z = (idx >= z0) & (idx < z1)
        z_core = (idx > z0) & (idx < z1 - 1)
        rflags, cflags = _cell_flags(y0, y1, kh, h), _cell_flags(x0, x1, kw, w)
    else:
        in_z = z_core = np.zeros(idx.size, bool)
        rflags = cflags = np.zeros(64, np.int8)
    return BoxCase(case_id, cells, in_z, z_core, rflags, cflags, bool(box.found))


def box_loss(logits, case: BoxCase, prior=None):
    """The weak-label loss of one case (module docstring); ``logits`` ``[S, 64, 64]``.

    ``prior`` (``[S, 64, 64]`` probabilities, optional): the base model's
    answer, the dense target inside the box, so that the correction changes
    what it contradicts and nothing else.

    Every term is a BCE on a *maximum* of logits, so a few wrong cells weigh as
    much as a whole wrong slice: the slices just outside a face, the ones a
    correction moved the face past, are a handful among thousands of easy
    cells and a mean over cells would not see them.
    """
    import torch
    from torch.nn import functional as F

    dev = logits.device
    in_z = torch.as_tensor(case.in_z, device=dev)
    core = torch.as_tensor(case.z_core, device=dev)
    rows = torch.as_tensor(case.rows, device=dev)
    cols = torch.as_tensor(case.cols, device=dev)
    plane = (rows >= 0)[:, None] & (cols >= 0)[None, :]  # the box's rectangle (cut cells included)
    # slices: outside the box nothing anywhere; inside it (end slices aside) something in the rectangle
    outside_max = logits[~in_z].amax(dim=(1, 2))
    terms = [F.binary_cross_entropy_with_logits(outside_max, torch.zeros_like(outside_max))] if outside_max.numel() else []
    # in-plane, over the box's slices: rows and columns entirely outside empty, inside filled
    if bool(in_z.any()):
        zs = logits[in_z]
        row_max, col_max = zs.amax(dim=(0, 2)), zs.amax(dim=(0, 1))
        row_t, col_t = rows[rows != -1].float(), cols[cols != -1].float()
        terms.append(F.binary_cross_entropy_with_logits(row_max[rows != -1], row_t))
        terms.append(F.binary_cross_entropy_with_logits(col_max[cols != -1], col_t))
        if case.found and bool(core.any()):
            inside = logits[core][:, plane].amax(dim=1)
            terms.append(F.binary_cross_entropy_with_logits(inside, torch.ones_like(inside)))
    # and a mild dense term: the mean over every cell outside the box is 0
    outside = ~(in_z[:, None, None] & plane[None])
    terms.append(0.5 * F.binary_cross_entropy_with_logits(logits[outside], torch.zeros_like(logits[outside])))
    if prior is not None and bool((~outside).any()):
        terms.append(0.5 * F.binary_cross_entropy_with_logits(logits[~outside], prior[~outside]))
    return sum(terms)


def replay_set(n: int, postprocess: dict, sess, log=print):
    """Fully labelled phantom slices: ``(cells [S,3,64,64], label [S,64,64])``."""
    from napari_heartbox.model.zschedule import context_offset, context_rows
    from napari_heartbox.phantom import make_phantom

    from .cells import heart_fraction, run_prep

    xs, ys = [], []
    for i in range(n):
        case = make_phantom(REPLAY_SEED0 + i)
        vol = case.volume
        label = heart_fraction(np.asarray(case.heart_mask, bool))
        rng = np.random.default_rng(REPLAY_SEED0 + i)
        nz = vol.shape[0]
        heart = np.flatnonzero(label.reshape(nz, -1).max(axis=1) > 0)
        keep = set(rng.choice(nz, min(nz, 24), replace=False).tolist())
        if heart.size:  # the heart's top and bottom, where boxes are decided
            for edge in (heart[0], heart[-1]):
                keep.update(range(max(0, edge - 4), min(nz, edge + 5)))
        idx = np.array(sorted(keep), np.int64)
        rows = context_rows(idx, nz, context_offset(float(vol.spacing[0]), postprocess))
        xs.append(run_prep(sess, vol.hu, rows))
        ys.append(label[idx])
        if log and ((i + 1) % 8 == 0 or i + 1 == n):
            log(f'replay phantoms {i + 1}/{n}')
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def train(base_onnx, cases: list[BoxCase], replay, *, steps: int = 300, lr: float = 5e-4,
          replay_batch: int = 24, seed: int = 0, device: str = 'cpu', progress=None):
    """Fine-tune the network of ``base_onnx`` on ``cases`` (+ ``replay``); returns it on the CPU."""
    import torch
    from torch.nn import functional as F

    from .from_onnx import freeze_batchnorm, net_from_onnx

    torch.manual_seed(seed)
    dev = torch.device(device)
    net = net_from_onnx(base_onnx).to(dev)
    net.train()
    freeze_batchnorm(net)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    xr = torch.from_numpy(replay[0]).to(dev)
    yr = torch.from_numpy(replay[1]).to(dev)
    tensors = [torch.from_numpy(c.cells).to(dev) for c in cases]
    with torch.no_grad():  # the base model's answers (targets inside the boxes)
        priors = [torch.sigmoid(net(x)) for x in tensors]
    order = torch.randperm(len(cases), generator=gen)
    for step in range(steps):
        k = int(order[step % len(cases)])
        if step % len(cases) == len(cases) - 1:
            order = torch.randperm(len(cases), generator=gen)
        x = tensors[k]
        # mild intensity changes so the few real cases are not memorised at the HU level
        gain = 1 + (float(torch.rand((), generator=gen)) - 0.5) * 0.06
        x = x * gain + torch.randn(x.shape, generator=gen).to(dev) * 6.0
        loss = box_loss(net(x), cases[k], priors[k])
        if len(xr):
            j = torch.randint(0, len(xr), (replay_batch,), generator=gen).to(dev)
            loss = loss + F.binary_cross_entropy_with_logits(net(xr[j]), yr[j])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(float(loss.detach()))
    return net.eval().cpu()


def export_model(net, base_card: dict, out_dir: Path, info: dict) -> Path:
    """Write ``heartbox.onnx`` + ``heartbox.card.json`` of ``net`` into ``out_dir``.

    The card is the base model's (same preprocessing and post-processing) with
    the new checksum, size and a ``finetuned`` section (``info``).
    """
    from napari_heartbox.model.card import CARD_NAME, ONNX_NAME, sha256_file, write_card

    from .export import compose, export_network, param_count

    out_dir.mkdir(parents=True, exist_ok=True)
    proto = compose(export_network(net))
    onnx_path = out_dir / ONNX_NAME
    tmp = onnx_path.with_suffix('.tmp')
    tmp.write_bytes(proto.SerializeToString())
    tmp.replace(onnx_path)
    card = json.loads(json.dumps(base_card))
    card.update(
        name=f'{base_card.get("name", "heart model")} (fine-tuned)',
        version=time.strftime('%Y.%m.%d'),
        sha256=sha256_file(onnx_path),
        bytes=onnx_path.stat().st_size,
        params=param_count(proto),
        finetuned=info,
    )
    card.pop('metrics', None)  # the base model's test metrics do not describe this one
    write_card(out_dir / CARD_NAME, card)
    return onnx_path


# ---------------------------------------------------------------- the command
def _score(model, volume, box) -> dict:
    """Box of ``model`` on ``volume`` scored against the corrected ``box``."""
    from napari_heartbox.evaluate import box_metrics

    got = model.propose(volume, margin_mm=0.0)
    row = {'found': bool(got.found), 'reference_found': bool(box.found)}
    if got.found and box.found:
        m = box_metrics(box.patient_mm(), got.patient_mm())
        row.update(iou=m['iou'], face_error_mm=m['face_error_mm'],
                   mean_abs_face_error_mm=m['mean_abs_face_error_mm'])
    else:
        row.update(iou=1.0 if got.found == box.found else 0.0, face_error_mm=None, mean_abs_face_error_mm=None)
    return row


def _fold_of(n: int) -> tuple[int, np.ndarray]:
    """Folds of the report: leave-one-out up to five cases, else five folds."""
    k = n if n <= 5 else 5
    return k, np.arange(n) % k


def _summary(rows: list[dict]) -> dict:
    iou = [r['iou'] for r in rows if r.get('iou') is not None]
    mae = [r['mean_abs_face_error_mm'] for r in rows if r.get('mean_abs_face_error_mm') is not None]
    return {'n': len(rows), 'median_iou': float(np.median(iou)) if iou else None,
            'mean_iou': float(np.mean(iou)) if iou else None,
            'mean_abs_face_error_mm': float(np.mean(mae)) if mae else None}


def finetune(corrections, out_dir, *, base=None, steps: int = 300, lr: float = 5e-4, replay: int = 16,
             device: str = 'cpu', report: bool = True, seed: int = 0, log=print) -> dict:
    """``napari-heartbox finetune``: corrected boxes → a new model folder + report.

    Parameters
    ----------
    corrections : path
        A worklist corrections folder or a folder of sector files beside their
        CTs (:func:`napari_heartbox.corrected_cases.find_corrected_cases`).
    out_dir : path
        Receives ``heartbox.onnx``, ``heartbox.card.json``,
        ``finetune_report.json`` and ``finetune_report.md``. Must not be the
        base model's folder or inside the corrections' CT folders.
    base : path, optional
        Model folder or ``.onnx`` to start from (default: the bundled model).
    steps, lr, replay, seed
        Optimiser steps per fine-tune, learning rate, replay phantoms, seed.
    device : str
        ``'cpu'`` (default) or ``'cuda'`` when torch sees a GPU.
    report : bool
        Also fine-tune once per fold and score the held-out cases (the
        before/after table). Off: the model is trained once, no scores.

    Returns
    -------
    dict
        The report (also written as JSON).
    """
    from . import require_torch

    torch = require_torch()
    from tqdm.auto import tqdm

    from napari_heartbox.corrected_cases import find_corrected_cases, load_case
    from napari_heartbox.model.card import ONNX_NAME
    from napari_heartbox.model.runtime import HeartModel

    from .cells import prep_session

    if device != 'cpu' and not torch.cuda.is_available():
        raise HeartboxError(f'--device {device}: torch sees no GPU here (use --device cpu)')
    out_dir = Path(out_dir)
    base_model = HeartModel.load(base)
    if out_dir.resolve() == base_model.onnx_path.parent.resolve():
        raise HeartboxError(f'{out_dir}: is the base model\'s folder; choose a new --out folder')
    t0 = time.perf_counter()
    found = find_corrected_cases(corrections)
    sess = prep_session(threads=2)
    rng = np.random.default_rng(seed)
    cases, volumes, boxes, skipped = [], [], [], []
    for c in tqdm(found, desc='reading cases', unit='case', leave=False):
        try:
            vol, box = load_case(c)
        except HeartboxError as e:
            skipped.append({'case': c.case, 'reason': str(e)})
            log(f'skipped {c.case}: {e}')
            continue
        cases.append(box_case(c.case, vol, box, base_model.postprocess, sess, rng))
        volumes.append(vol)
        boxes.append(box)
    if not cases:
        raise HeartboxError(f'{corrections}: none of the {len(found)} cases could be read')
    n = len(cases)
    log(f'{n} corrected case(s) from {corrections}; replay: {replay} phantoms')
    rep = replay_set(replay, base_model.postprocess, sess, log=None) if replay else (
        np.zeros((0, 3, 64, 64), np.float32), np.zeros((0, 64, 64), np.float32))
    k, fold = _fold_of(n) if (report and n >= 2) else (0, np.zeros(n, int))
    bar = tqdm(total=steps * (k + 1), desc='fine-tuning', unit='step', mininterval=2.0)

    def tick(loss):
        bar.update(1)
        bar.set_postfix(loss=f'{loss:.3f}', refresh=False)

    def fit(idx):
        return train(base_model.onnx_path, [cases[i] for i in idx], rep, steps=steps, lr=lr,
                     seed=seed, device=device, progress=tick)

    rows = []
    for f in range(k):
        held = np.flatnonzero(fold == f)
        bar.set_description(f'fine-tuning fold {f + 1}/{k}')
        net = fit(np.flatnonzero(fold != f))
        with tempfile.TemporaryDirectory() as tmp:
            export_model(net, base_model.card, Path(tmp), {'fold': f})
            fold_model = HeartModel(Path(tmp) / ONNX_NAME)
            for i in held:
                before = _score(base_model, volumes[i], boxes[i])
                after = _score(fold_model, volumes[i], boxes[i])
                rows.append({'case': cases[i].case, 'fold': f, 'before': before, 'after': after})
    bar.set_description('fine-tuning on all cases')
    net = fit(np.arange(n))
    bar.close()
    summary = {'before': _summary([r['before'] for r in rows]), 'after': _summary([r['after'] for r in rows])}
    info = {
        'base_sha256': base_model.sha256, 'base': str(base_model.onnx_path),
        'corrections': str(Path(corrections).resolve()), 'cases': [c.case for c in cases],
        'skipped': skipped, 'steps': steps, 'lr': lr, 'replay_phantoms': replay, 'seed': seed,
        'device': device, 'torch': torch.__version__,
        'report': {'folds': k, 'scheme': 'leave-one-out' if k == n else f'{k}-fold', **summary} if k else None,
        'seconds': round(time.perf_counter() - t0, 1),
    }
    export_model(net, base_model.card, out_dir, info)
    result = {**info, 'per_case': rows}
    (out_dir / 'finetune_report.json').write_text(json.dumps(result, indent=1, default=str) + '\n')
    (out_dir / 'finetune_report.md').write_text(report_markdown(result))
    log(f'wrote {out_dir / ONNX_NAME} in {info["seconds"]:.0f} s')
    return result


def report_markdown(r: dict) -> str:
    """The before/after table of a fine-tuning report."""
    rep = r.get('report')
    lines = ['# Fine-tuning report', '',
             (f'Base model `{r["base_sha256"][:12]}…`, {len(r["cases"])} corrected case(s) from '
              f'`{r["corrections"]}`, {r["steps"]} steps, {r["replay_phantoms"]} replay phantoms, '
              f'{r["seconds"]:.0f} s on {r["device"]}.'), '']
    if not rep:
        lines += [('No held-out scores: fewer than two cases (or `--no-report`). A model scored on '
                   'the cases it was trained on proves nothing, so none is given.'), '']
        return '\n'.join(lines)
    lines += [(f'Scores on held-out cases ({rep["scheme"]}: each case is scored by a model fine-tuned '
               'without it), margin 0, against the corrected box.'), '',
              '| case | IoU before | IoU after | mean abs face error before (mm) | after (mm) |',
              '|---|---|---|---|---|']

    def f(v, fmt='.3f'):
        return '–' if v is None else format(v, fmt)

    for row in r['per_case']:
        b, a = row['before'], row['after']
        lines.append(f'| {row["case"]} | {f(b["iou"])} | {f(a["iou"])} | '
                     f'{f(b["mean_abs_face_error_mm"], ".1f")} | {f(a["mean_abs_face_error_mm"], ".1f")} |')
    b, a = rep['before'], rep['after']
    lines += [(f'| **median / mean** | {f(b["median_iou"])} | {f(a["median_iou"])} | '
               f'{f(b["mean_abs_face_error_mm"], ".1f")} | {f(a["mean_abs_face_error_mm"], ".1f")} |'), '']
    return '\n'.join(lines)
