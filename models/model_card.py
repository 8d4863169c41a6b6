"""Write ``models/MODEL_CARD.md`` from the card JSON and the evaluation."""

from __future__ import annotations

from pathlib import Path

FACES = ('right', 'left', 'anterior', 'posterior', 'inferior', 'superior')


# Hand-written analysis of the shipped model's failures on real CT (model trained on
# phantom generator 30a93431b56c, round 3); revise it whenever the model is retrained.
KNOWN_LIMITATIONS = [
    '## Known limitations (analysis of the real-scan results; revise after retraining)',
    '',
    ('- The model is trained on phantoms only and does **not** meet the real-scan targets. Round 3 '
    'changed the phantom where the real scans showed the failures (rendered side by side): the heart '
    'now rests on the diaphragm (no lung under the inferior heart wall; a 1-6 mm muscle sheet, then '
    'the liver\'s left lobe directly under the heart), and the great vessels above the heart are '
    'packed closer to the sternum with less mediastinal fat; training 4000 -> 6000 steps. Scored on '
    'the same round-3 held-out phantoms, the round-2 model gets median IoU 0.750 (p5 0.49), mean '
    '|face error| 5.85 mm; this model 0.835 (p5 0.63), 3.20 mm. Real scans: CPTAC (contrast) IoU '
    '0.24 -> 0.60 (the liver below the heart is no longer taken for heart: inferior face error 42 -> 0 '
    'mm, right 64 -> 6 mm); RICORD (non-contrast) 0.66 -> 0.56 (box 21 mm too far right, 10 mm short '
    'at the bottom, 9 mm too high).'),
    ('- Remaining real-scan errors: the great vessels just above the heart (ascending aorta, '
    'pulmonary trunk, SVC) are still partly taken for heart (CPTAC superior face +24 mm, RICORD +9 '
    'mm), and the boxes are 10-16 mm too deep anteriorly (pericardial fat / chest wall).'),
    ('- Heart-free real scans: all three (the 20-slice upper-abdomen DICOM and the two 3 mm '
    'abdomen/pelvis NIfTI volumes) give `found: false` (round 2: false boxes on the liver dome of the '
    'NIfTI volumes).'),
    ('- Held-out phantoms: one heart of 31 is missed (round-2 model on the same phantoms: none); '
    'the phantom targets median IoU 0.90 and 3 mm are not reached.'),
    ('- Default margin (calibrated for coverage, session 2): no margin up to 10 mm gives coverage >= '
    '0.99 on >= 95 % of the 120 calibration phantoms (87 % at 5 mm, 90 % at 10 mm; the cases still '
    'below at 10 mm are misses of 5-50 % of the heart, not a few millimetres), so the largest tried, '
    '10 mm, is used. On the test phantoms it gives coverage >= 0.99 in 30 of 31 cases (96.8 %; the '
    'one below is the missed heart), against 0.90 with 5 mm, at the cost of tightness (median IoU '
    '0.55 with the margin, 0.835 without). A crop for a downstream segmenter must contain the heart; '
    'pass `margin_mm=0` (`--margin-mm 0`) for the tight box.'),
    ('- Tried in round 3 and not shipped (candidate runs, `--out`): (a) more transition slices (16 '
    'edge, 12 hard-negative per side) and 8000 steps: held-out phantoms 0.841 / 2.87 mm, but CPTAC IoU '
    '0.53 and RICORD 0.41 (great vessels taken for heart: RICORD superior face +31 mm); (b) dilated great '
    'vessels in the phantom (radius scale 0.9-1.3): CPTAC 0.66 with the superior face exact, RICORD '
    '0.55, but one false box and one missed heart on the held-out phantoms.'),
    ('- Seed spread (round 4, `models/EXPERIMENTS.md`): this model is one draw of its recipe. Three more '
    'torch seeds of the same recipe on the same training phantoms give CPTAC IoU 0.53 / 0.36 / 0.38 '
    'and RICORD 0.53 / 0.53 / 0.55, so part of its CPTAC 0.60 is luck; compare recipes by seed means '
    '(`python -m models.seed_study`), never by one run. Round 4 changed the phantom where the real '
    'boxes fail (great vessels packed against the ascending aorta and a wide, broad-roofed LA: seed '
    'mean 0.49 / 0.59 against 0.42 / 0.54 for this recipe, about one standard error; adding liver '
    'against the heart\'s lowest slices and a flatter inferior wall: 0.42 / 0.54). More phantoms, more '
    'steps or a wider network fit the phantoms better (median IoU up to 0.87) and the real scans worse. '
    'Nothing was shipped; the round-4 generator is on the branch `round4-phantoms`.'),
    ('- Confidence: a logistic fit on the 95 candidate components of the 120 calibration phantoms, '
    'only 4 of them failures (30 phantoms, 22 candidates, in round 3 gave an almost flat fit, ~0.95 '
    'everywhere); target P(heart in view and IoU >= 0.5). The real chest CTs get 0.985 (CPTAC) and 0.98 (RICORD) at IoU '
    '0.60 and 0.56: consistent with that target, which is loose; it does not say the box is tight.'),
    ('- Phantom realism gaps that remain: phantom bodies are flatter ellipses and the phantom ribs '
    'thicker than in the two real scans; the real great-vessel mass above the heart is rounder and '
    'more compact.'),
    ('- Per-slice 2D model: no z context, so the heart/liver and atria/great-vessel transitions rely '
    'on one 64×64 slice each. On the real contrast scan the liver\'s left lobe 3-6 mm below the heart '
    'and the vessel mass up to 3 cm above the left atrium look like heart slices to every 2D recipe '
    'tried. A 2.5D prototype (cells of z - 8 mm, z, z + 8 mm as channels, 3 seeds) fixed the liver '
    'confusion on the contrast scan (CPTAC seed mean 0.42 -> 0.55) and reached 2.7 mm on the phantoms, '
    'but took the unenhanced posterior mediastinum (descending aorta, oesophagus) for heart on the '
    'non-contrast scan (RICORD 0.54 -> 0.32). Trained on the round-4 phantoms it reached CPTAC 0.50 / '
    '0.84 and RICORD 0.43 / 0.49 (2 seeds; RICORD\'s box still leaks 45-74 mm posteriorly). Not '
    'shipped: it needs the adjacent-slice input in the graph, runtime, slice schedules and browser '
    '(`models/EXPERIMENTS.md`).'),
    ('- Speed: `propose` scores slices by the coarse-to-fine slice schedule (`docs/model.md` §3), 145 '
    'of the 700 slices of a 0.5 mm scan: 0.062 s in memory, 2.7× one numpy pass over the volume '
    '(bar 4×), 2 workers × chunks of 8 slices; see `benchmarks/README.md`.'),
    '',
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
        f'{tw.get("steps")} steps, seed {tw.get("seed")}, torch {tw.get("torch")} on {tw.get("threads")} CPU threads. '
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
        'nice python -m models.train       # writes napari_heartbox/model/assets/* and this file',
        'python -m models.seed_study --seeds 0 1 2   # the recipe\'s seed spread (add --device cuda on a GPU)',
        '```',
        '',
    ]
    Path(path).write_text('\n'.join(lines), encoding='utf-8')
