"""Write ``models/MODEL_CARD.md`` from the card JSON and the evaluation."""

from __future__ import annotations

from pathlib import Path

FACES = ('right', 'left', 'anterior', 'posterior', 'inferior', 'superior')


SPEED_LINE = (
    '- Speed: `propose` scores 145 of the 700 slices of a 0.5 mm scan by the slice schedule '
    '(`docs/model.md` §3), each with its two context slices, which the coarse pass scores anyway: '
    '0.069 s in memory, 2.9× one numpy pass over the volume (bar 4×; the per-slice round-3 model: '
    '2.7×), 2 workers × chunks of 8 slices. Browser: 700 DICOM files → sector in 1.11 s (1 thread), '
    '0.48 s of it preprocess + inference. See `benchmarks/README.md`.'
)

# Hand-written analysis of the shipped model's failures on real CT (z-context model, torch seed 2,
# trained on 480 phantoms of generator 3782645f815a, round 6; card of round 8); revise it whenever the
# model is retrained.
KNOWN_LIMITATIONS = [
    '## Known limitations (analysis of the real-scan results; revise after retraining)',
    '',
    ('- The model is trained on phantoms only and does **not** meet the real-scan targets (IoU 0.65 on '
    'the contrast scan, 0.77 on the non-contrast scan, against 0.85). Its real-scan errors are boxes '
    'too large, not hearts missed: on the contrast scan anterior +24 mm (the chest wall and the fat and '
    'vessels between the right ventricle and the sternum) and superior +15 mm (the pouch above the left '
    'atrium that the reference reads as a pulmonary vein); on the non-contrast scan posterior +18 mm (the '
    'oesophagus and descending aorta behind the left atrium, one grey mass with it in non-contrast CT). '
    'The left face is +4 / +5 mm; the other faces are within 3 mm on both scans.'),
    ('- **Threshold 0.75** (0.5 before round 7): picked on 60 validation phantoms by '
    '`python -m models.threshold_study` as the value with the highest seed-mean validation mean IoU over '
    'the recipe\'s three seeds (`models/EXPERIMENTS.md`, round 7). It cuts the less certain tissue that '
    'touches the heart: same network, CPTAC 0.61 -> 0.65, RICORD 0.73 -> 0.77; the recipe\'s seed means '
    '0.64 / 0.64 -> **0.71 / 0.72**. Its cost is in the tails: the component can break in two (3 of 95 '
    'calibration phantoms with a heart) and the heart\'s least certain lowest slice is dropped more '
    'often, so the calibrated default margin rose from 8 to 18 mm.'),
    ('- **Split-heart re-join** (round 8, `docs/model.md` §4 step 2): a second component of at least '
    '10 % of the largest\'s cells, within 20 mm of it in z and inside its in-plane (row and column) '
    'footprint is kept too. On the 95 calibration phantoms with a heart it re-joins the 3 hearts that '
    'threshold 0.75 cuts in two, and the calibrated default margin falls from 18 to 13 mm; it changes '
    'no test-phantom box at margin 0 and no real-scan box of any of 15 draws of the recipe. The round-7 '
    'version (overlapping rows and columns instead of inside them) re-joined tissue beyond the heart in '
    '3 of those 15 draws: the liver dome below it on the contrast scan (2), the great vessels above it '
    'on the non-contrast scan (1).'),
    ('- **This model is one draw of its recipe.** The recipe (z context, phantom round 6, 480 phantoms, '
    '6000 steps, threshold 0.75) was trained with torch seeds 0-5 on the CPU (CPTAC IoU 0.79 / '
    '0.69 / 0.65 / 0.71 / 0.83 / 0.50, RICORD 0.59 / 0.81 / 0.77 / 0.64 / 0.63 / 0.43; seeds 3-5 in '
    'round 9) and, in round 8, with 12 more seeds on a GPU. Over the 18 draws: CPTAC **0.69 +- 0.10**, '
    'RICORD **0.58 +- 0.12**; no draw reaches 0.85 on either scan, and one GPU draw has a false box '
    'on two heart-free scans. Seed 2 was '
    'picked in round 6 by the rule fixed in round 5, the lowest mean face error on 60 validation '
    'phantoms; on the non-contrast scan it is better than most draws, and picking by the real scans '
    'would be tuning to them; over the 12 GPU draws the validation phantoms do not rank the draws by '
    'real-scan IoU (Spearman correlation about 0). Expect IoU around 0.55-0.7 on unseen scans '
    '(`models/EXPERIMENTS.md`, rounds 8-9).'),
    ('- Previous bundled card (round 6: the same network at threshold 0.5, default margin 8 mm): CPTAC '
    '0.61, RICORD 0.73; test phantoms median IoU 0.853, mean |face error| 3.15 mm, coverage >= 0.99 in '
    '87 % at its margin.'),
    ('- Heart-free real scans: all three (the 20-slice upper-abdomen DICOM and the two 3 mm '
    'abdomen/pelvis NIfTI volumes) give `found: false`.'),
    ('- Held-out phantoms: median IoU 0.842 against the 0.90 target; mean |face error| 3.21 mm against '
    '3 mm. Two hearts of 31 are missed, both scans cut at the heart\'s bottom that hold only its lowest '
    '8-12 mm (35 ml or less in view).'),
    ('- Default margin 13 mm (18 mm before the round-8 re-join): the smallest margin with coverage >= '
    '0.99 on >= 95 % of the 120 calibration phantoms. On the 31 test phantoms with a heart it gives '
    'coverage >= 0.99 in 28 (90.3 %: the two missed hearts, and one whose lowest 15 mm stay under the '
    'threshold, 0.978 covered, 1.0 at 18 mm), under the 95 % bar; median IoU 0.51 with the margin, '
    '0.84 without. The margin is there so that a crop for a downstream segmenter contains the heart; '
    'pass a smaller `margin_mm` (`--margin-mm`, the widget\'s margin field) for a tighter box, `0` for '
    'the tight one, or a larger one for more safety.'),
    ('- Confidence: a logistic fit on the 95 candidate components of the 120 calibration phantoms; '
    'target P(heart in view and IoU >= 0.5). It rests mostly on the component\'s volume, and it is '
    '1.00 on both real chest CTs (IoU 0.65 and 0.77): it says a heart was found, not that the box is '
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
        seen = ' (**seen in training**: not a test score)' if r.get('seen_in_training') else ''
        lines.append(
            f'| {r["id"]}{seen} | {r.get("heart_expected")} | {r.get("found")} | {_f(r.get("iou"))} | '
            f'{fe_s} | {_or_dash(r.get("all_faces_within_tolerance"))} | {_f(r.get("confidence"), ".2f")} |'
        )
    return lines


def _real_training_line(real: dict | None) -> str:
    """What the card says about real scans in training (the card JSON's ``real_anatomy``)."""
    if not real:
        return 'No real scan was used for training, tuning or calibration.'
    return (f'Real anatomy in training: {real.get("source") or ", ".join(real.get("patients", []))}; '
            f'{real.get("cases")} augmented volumes, {real.get("slices")} '
            f'slices, {real.get("fraction_of_batches")} of each batch (`models/real_data.py`). Its row '
            'below is marked as seen in training; a score on it is not a test score. No other real scan '
            'was used for training, tuning or calibration.')


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
        _real_training_line(tw.get('real_anatomy')),
        '',
        '## Post-processing',
        '',
        f'Threshold {pp["threshold"]} (the recipe\'s, picked on validation phantoms by '
        '`python -m models.threshold_study`), largest 6-connected component'
        + (f' plus any other of >= {pp["join_fraction"]} of its cells within {pp["join_gap_mm"]} mm of it '
           'in z and inside its in-plane footprint (a heart split along z; `docs/model.md` §4 step 2; the '
           'footprint condition was added after the round-7 rule re-joined the liver on a real scan, '
           '`models/EXPERIMENTS.md` round 8)' if pp.get('join_fraction') is not None else '')
        + ', minimum heart volume '
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
        'pip install -e ".[dev]"          # torch==2.13.0 (CPU build: --extra-index-url https://download.pytorch.org/whl/cpu)',
        f'nice {tw.get("command", "python -m models.train")}   # writes napari_heartbox/model/assets/* and this file',
        'python -m models.seed_study --seeds 0 1 2   # the recipe\'s seed spread (add --device cuda on a GPU)',
        'python -m models.threshold_study models/runs/seed_study/seed_*   # the recipe\'s threshold',
        '```',
        '',
    ]
    Path(path).write_text('\n'.join(lines), encoding='utf-8')
