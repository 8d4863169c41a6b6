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
# trained on 480 phantoms of generator 3782645f815a, round 6); revise it whenever the model is retrained.
KNOWN_LIMITATIONS = [
    '## Known limitations (analysis of the real-scan results; revise after retraining)',
    '',
    ('- The model is trained on phantoms only and does **not** meet the real-scan targets (IoU 0.61 on '
    'the contrast scan, 0.73 on the non-contrast scan, against 0.85). Its real-scan errors are boxes '
    'too large, not hearts missed: on the contrast scan anterior +27 mm (the fat, cartilage and vessels '
    'between the right ventricle and the sternum) and superior +15 mm (the pouch above the left atrium '
    'that the reference reads as a pulmonary vein); on the non-contrast scan posterior +18 mm (the '
    'oesophagus and descending aorta behind the left atrium, one grey mass with it in non-contrast CT). '
    'The left face is +6 / +7 mm; the other faces are within 4 mm on both scans.'),
    ('- **This model is one draw of its recipe.** The recipe (z context, phantom round 6, 480 phantoms, '
    '6000 steps) was trained with torch seeds 0, 1, 2 (`models/EXPERIMENTS.md`, round 6): CPTAC IoU '
    '0.60 / 0.70 / 0.61, RICORD 0.41 / 0.78 / 0.73, seed means **0.64 / 0.64** (round 5, the previous '
    'recipe: 0.58 / 0.47). Seed 2 was picked by the rule fixed in round 5, the lowest mean face error on '
    '60 validation phantoms (3.12 mm against 3.39 and 4.05); it is not the best draw on the real scans '
    '(seed 1 is), and picking by them would be tuning to the two scans. Expect the seed means on unseen '
    'scans.'),
    ('- Previous bundled model (round 5, 240 phantoms, seed 2): CPTAC 0.66, RICORD 0.63; test phantoms '
    '(its own generator) median IoU 0.838, mean |face error| 2.89 mm, 1 heart missed, coverage >= 0.99 '
    'in 96.8 % at its 9 mm margin. This draw is better on the non-contrast scan and on the median '
    'phantom IoU, worse on the contrast scan and on the two phantom targets below.'),
    ('- Heart-free real scans: all three (the 20-slice upper-abdomen DICOM and the two 3 mm '
    'abdomen/pelvis NIfTI volumes) give `found: false`.'),
    ('- Held-out phantoms: median IoU 0.853 against the 0.90 target; mean |face error| 3.15 mm against '
    '3 mm (the recipe\'s seed mean is 3.16 mm, within noise of the bar; round 5\'s was 3.34). Two '
    'hearts of 31 are missed, both scans cut at the heart\'s bottom that hold only its lowest 8-12 mm '
    '(35 ml or less in view).'),
    ('- Default margin 8 mm: the smallest margin with coverage >= 0.99 on >= 95 % of the 120 calibration '
    'phantoms. On the 31 test phantoms with a heart it gives coverage >= 0.99 in 27 (87 %: the two '
    'missed hearts, and two boxes short by 5 mm at the bottom and by 2.5 mm at the top), under the 95 % '
    'bar; median IoU 0.61 with the margin, 0.85 without. A crop for a downstream segmenter must contain '
    'the heart; pass a larger `margin_mm` for more safety, `margin_mm=0` (`--margin-mm 0`) for the '
    'tight box.'),
    ('- Confidence: a logistic fit on the 96 candidate components of the 120 calibration phantoms; '
    'target P(heart in view and IoU >= 0.5). It rests mostly on the component\'s volume, and it is '
    '1.00 on both real chest CTs (IoU 0.61 and 0.73): it says a heart was found, not that the box is '
    'tight.'),
    ('- Phantom realism gaps that remain: phantom bodies are flatter ellipses and the phantom ribs '
    'thicker than in the two real scans; the real mediastinum around the heart (vessels, oesophagus, '
    'consolidated lung, fat) is one homogeneous mass where the phantom has separate shapes. Adding '
    'lymph nodes did not help (round 5b); adding prepericardial fat (round 6) moved the anterior face '
    'by ~10 mm on average over seeds (`models/EXPERIMENTS.md`).'),
    ('- z context: each scored slice is seen with the slices ~8 mm below and above it. The browser and '
    'the lazy DICOM path read those context slices too; the coarse schedule is aligned so that they are '
    'mostly slices it scores anyway (`docs/model.md` §3).'),
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
