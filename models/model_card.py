"""Write ``models/MODEL_CARD.md`` from the card JSON and the evaluation."""

from __future__ import annotations

from pathlib import Path

FACES = ('right', 'left', 'anterior', 'posterior', 'inferior', 'superior')


SPEED_LINE = (
    '- Speed: `propose` scores 145 of the 700 slices of a 0.5 mm scan by the slice schedule '
    '(`docs/model.md` §3), each with its two context slices, which the coarse pass scores anyway: '
    '0.071 s in memory, 3.0× one numpy pass over the volume (bar 4×; the per-slice round-3 model: '
    '2.7×), 2 workers × chunks of 8 slices. Browser: 700 DICOM files → sector in 1.11 s (1 thread), '
    '0.48 s of it preprocess + inference. See `benchmarks/README.md`.'
)

# Hand-written analysis of the shipped model's failures on real CT (z-context model, torch seed 2,
# trained on phantom generator 2ae5d2a447a3, round 5); revise it whenever the model is retrained.
KNOWN_LIMITATIONS = [
    '## Known limitations (analysis of the real-scan results; revise after retraining)',
    '',
    ('- The model is trained on phantoms only and does **not** meet the real-scan targets (IoU 0.66 on '
    'the contrast scan, 0.63 on the non-contrast scan, against 0.85). Its remaining real-scan errors are '
    'boxes too large, not hearts missed: anterior face +25 / +17 mm (pericardial fat, anterior chest '
    'wall and, on the contrast scan, the liver\'s left lobe in front of the heart\'s lowest slices), '
    'superior face +15 / +14 mm (the great vessels and the soft tissue around the carina just above the '
    'left atrium), and on the non-contrast scan posterior +11 mm (oesophagus, descending aorta). '
    'The inferior, left and right faces are within 4 mm on both scans.'),
    ('- **This model is one draw of its recipe.** The recipe (z context, phantom round 5, 6000 steps) was '
    'trained with torch seeds 0, 1, 2 on the same phantoms (`models/EXPERIMENTS.md`, round 5): CPTAC '
    'IoU 0.50 / 0.57 / 0.66, RICORD 0.35 / 0.41 / 0.63, seed means 0.58 / 0.47. Seed 2 was picked by '
    'the lowest mean face error on 60 validation phantoms (calibration seeds 100000-100059: 3.47 mm '
    'against 3.68 and 4.00); its real-scan scores were known when that rule was chosen, and it is also '
    'the best seed there. Expect the seed means, not this draw, on unseen scans.'),
    ('- Previous bundled model (round 3, per-slice 2D network): CPTAC 0.60, RICORD 0.56; on the round-5 '
    'test phantoms median IoU 0.749 and mean |face error| 5.0 mm (every slice scored). Its recipe\'s '
    'seed means were 0.42 / 0.54. The z-context recipe is better on the contrast scan and on phantoms, '
    'and 0.07 below it on the non-contrast scan in seed means (about one standard error).'),
    ('- Heart-free real scans: all three (the 20-slice upper-abdomen DICOM and the two 3 mm '
    'abdomen/pelvis NIfTI volumes) give `found: false`.'),
    ('- Held-out phantoms: the 3 mm mean face error target is met (2.89 mm); the median IoU target 0.90 '
    'is not (0.838). One heart of 31 is missed: a scan cut at the heart\'s bottom that holds only its '
    'two lowest 4 mm slices.'),
    ('- Default margin 9 mm: the smallest margin with coverage >= 0.99 on >= 95 % of the 120 calibration '
    'phantoms. On the test phantoms it gives coverage >= 0.99 in 30 of 31 cases (the one below is the '
    'missed heart), at the cost of tightness (median IoU 0.59 with the margin, 0.84 without). A crop '
    'for a downstream segmenter must contain the heart; pass `margin_mm=0` (`--margin-mm 0`) for the '
    'tight box.'),
    ('- Confidence: a logistic fit on the 96 candidate components of the 120 calibration phantoms; '
    'target P(heart in view and IoU >= 0.5). It rests mostly on the component\'s volume, and it is '
    '1.00 on both real chest CTs (IoU 0.66 and 0.63): it says a heart was found, not that the box is '
    'tight.'),
    ('- Phantom realism gaps that remain: phantom bodies are flatter ellipses and the phantom ribs '
    'thicker than in the two real scans; the real mediastinum above the heart (vessels, nodes, fat) '
    'is one homogeneous mass where the phantom has separate tubes. Adding lymph nodes did not help '
    '(round 5b, `models/EXPERIMENTS.md`).'),
    ('- z context: each scored slice is seen with the slices ~8 mm below and above it. It fixed what '
    'no per-slice recipe fixed on the contrast scan (the liver below the heart: right and inferior '
    'faces within 2 mm), and it met the 3 mm phantom target. The browser and the lazy DICOM path '
    'read those context slices too; the coarse schedule is aligned so that they are mostly slices it '
    'scores anyway (`docs/model.md` §3).'),
    SPEED_LINE,
]


def _f(v, spec='.3f'):
    return '–' if v is None else format(v, spec)


def _or_dash(v) -> str:
    return '–' if v is None else str(v)


def _summary_table(summ: dict) -> list[str]:
    lines = [
        '| margin | n heart / no heart | found accuracy | missed | false box | IoU median (p5) | mean abs face err mm (mean) | p95 abs face err mm | coverage ≥ 0.99 |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for name, s in summ.items():
        iou = s.get('iou') or {}
        mf = s.get('mean_abs_face_error_mm') or {}
        lines.append(
            f'| {name.removeprefix("margin_")} | {s["n_heart"]} / {s["n_no_heart"]} | '
            f'{_f(s["found_accuracy"])} | {s["n_missed_heart"]} | {s["n_false_box"]} | '
            f'{_f(iou.get("median"))} ({_f(iou.get("p5"))}) | {_f(mf.get("mean"), ".2f")} | '
            f'{_f(s.get("abs_face_error_p95_mm"), ".2f")} | {_f(s.get("coverage_ge_99"))} |'
        )
    return lines


def _real_table(rows: list[dict]) -> list[str]:
    lines = [
        '| case | heart | found | IoU | face errors mm (R, L, A, P, I, S; + = box outside) | all faces within unc.+5 mm | confidence |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        fe = r.get('face_error_mm')
        fe_s = '–' if not fe else ', '.join(f'{fe[f]:+.1f}' for f in FACES)
        lines.append(
            f'| {r["id"]} | {r.get("heart_expected")} | {r.get("found")} | {_f(r.get("iou"))} | '
            f'{fe_s} | {_or_dash(r.get("all_faces_within_tolerance"))} | {_f(r.get("confidence"), ".2f")} |'
        )
    return lines


def write_model_card(card: dict, phantom_summary: dict, real: list, real_default: list, path) -> None:
    """Render the markdown model card."""
    from models import data
    tw = card.get('trained_with', {})
    pp = card['postprocess']
    lines = [
        '# Model card: napari-heartbox heart model',
        '',
        '_Generated by `python -m models.train`; regenerate rather than edit._',
        '',
        '## What it is',
        '',
        f'One ONNX graph (opset {card["opset"]}, {card["bytes"]:,} bytes, {card["params"]:,} float '
        f'weights, {card["macs_per_slice"]:,} MAC per slice of the network) that maps int16 HU slices '
        '`hu [N,H,W]` and z-context rows `context [M,3]` (each scored slice with the slices '
        f'~{card["postprocess"].get("z_context_mm", 0):g} mm below and above it) to a per-cell heart '
        'probability `prob [M,64,64]`. The preprocessing (HU window '
        f'{card["preprocess"]["window_hu"]}, exact area mean to 64×64 cells, the context gather) is part '
        'of the graph; '
        'see `docs/model.md`. SHA-256 `' + card['sha256'] + '`.',
        '',
        f'Ops: {", ".join(card["ops"])}.',
        '',
        '## Architecture',
        '',
        ('`models/net.py` HeartNet: input the 64×64 cells of slices z − k, z, z + k as 3 channels; '
        'normalise `(cells + 300) / 500`; stem conv 3×3 s2 (3 → 8 ch, 32²); '
        'depthwise-separable blocks 8→16 s2 (16²), 16→16, 16→48 s2 (8²), 48→48 (5×5), 48→48 (3×3, '
        'dilation 2), 48→64 s2 (4²), 64→64; squeeze-excite gate from the 4×4 global context on the 8² '
        'features; decoder with additive skips at 8², 16², 32² and bilinear upsampling to 64² logits; '
        'sigmoid. ReLU; BatchNorm folded at export.'),
        '',
        '## Training data',
        '',
        (f'{tw.get("train_phantoms")} randomised thorax phantoms (`napari_heartbox.phantom.make_phantom`, seeds '
        f'{tw.get("train_seeds")}; the generator\'s parameters are documented in `models/PHANTOM.md`), '
        f'{tw.get("training_slices")} slices (a uniform sample of each volume + up to {data.EDGE_MAX_PER_SIDE} '
        f'of the slices within {data.EDGE_BAND_MM:g} mm of the heart top and of the heart bottom + up to '
        f'{data.HARD_MAX_PER_SIDE} hard-negative slices {data.HARD_BELOW_MM[0]:g}-{data.HARD_BELOW_MM[1]:g} mm '
        f'below the heart (liver dome) and {data.HARD_MAX_PER_SIDE} at {data.HARD_ABOVE_MM[0]:g}-'
        f'{data.HARD_ABOVE_MM[1]:g} mm above it (great vessels)), each with its z context (the slices '
        'k below and above it, k as at run time), preprocessed by running the preprocessing '
        'graph in onnxruntime. '
        'Label = fraction of each cell inside the phantom heart mask. Augmentation: left-right (50 %) and '
        'antero-posterior (15 %) flips (the same for the three context slices, as are the geometry and HU changes below), random scale 0.8–1.25, rotation ±12°, shift ±15 %, HU gain ±6 % and '
        'offset ±30 HU keeping air fixed, a random monotone power remap of the soft-tissue range '
        '[-150, 450] HU (60 %, gamma 0.56-1.8), cell noise up to 12 HU, blur (30 %: a random mix with the '
        '3×3 cell mean). '
        f'Loss: BCE on soft labels; AdamW, one-cycle LR {tw.get("lr")}, batch {tw.get("batch")}, '
        f'{tw.get("steps")} steps, phantom seed {tw.get("seed")}, torch seed {tw.get("torch_seed", tw.get("seed"))}, '
        f'torch {tw.get("torch")} on {tw.get("threads")} CPU threads. '
        'Time (s): '
        + ', '.join(f'{k} {v}' for k, v in (tw.get('seconds') or {}).items() if not isinstance(v, bool))
        + (
            ' (training time from the run that exported the model; data and total from a later '
            '`--eval-only` run that redid calibration, evaluation and the cards).'
            if tw.get('eval_only_rerun')
            else '.'
        )),
        '',
        'No real scan was used for training, tuning or calibration.',
        '',
        '## Post-processing',
        '',
        f'Threshold {pp["threshold"]}, largest 6-connected component, minimum heart volume '
        f'{pp["min_heart_volume_ml"]} ml, sub-cell in-plane faces, default margin '
        f'{pp["default_margin_mm"]} mm ({pp.get("default_margin_note", "")}), '
        f'minimum confidence {pp.get("min_confidence", 0)}. Confidence = {pp["confidence"]} (logistic '
        'fit on held-out calibration phantoms, seeds ' + str(tw.get('calibration_seeds')) + ').',
        '',
        '## Metrics: held-out test phantoms (seeds ' + str(tw.get('test_seeds')) + ')',
        '',
        *_summary_table(phantom_summary),
        '',
        'Targets: median IoU ≥ 0.90, mean |face error| ≤ 3 mm, coverage ≥ 0.99 in ≥ 95 % of cases, no false box.',
        '',
        '## Metrics: real scans in `../shared/data/ct/` (margin 0)',
        '',
        *_real_table(real),
        '',
    ]
    if real_default:
        lines += [
            f'With the default margin ({pp["default_margin_mm"]} mm):',
            '',
            *_real_table(real_default),
            '',
        ]
    lines += [
        ('Targets: each chest CT IoU ≥ 0.85 with every face within its stated uncertainty + 5 mm; '
        'heart-free scans `found: false`. Reference boxes are hand-drawn (see each `reference_box.json`).'),
        '',
        *KNOWN_LIMITATIONS,
        '## Reproduce',
        '',
        '```sh',
        'pip install -e ".[dev]"          # torch==2.13.0 CPU',
        f'nice {tw.get("command", "python -m models.train")}   # writes napari_heartbox/model/assets/* and this file',
        'python -m models.seed_study --seeds 0 1 2   # the recipe\'s seed spread (add --device cuda on a GPU)',
        '```',
        '',
    ]
    Path(path).write_text('\n'.join(lines), encoding='utf-8')
