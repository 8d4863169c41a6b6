"""``napari-heartbox batch``: discovery, Dask runs identical to serial ``propose``, a killed
worker, an interrupted run that resumes, failures recorded, outputs the worklist opens."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip('distributed', reason='batch needs the batch extra (dask[distributed])')

from batch_archive import make_archive  # noqa: E402
from distributed import Client, LocalCluster, WorkerPlugin  # noqa: E402

from napari_heartbox.archive import discover_series  # noqa: E402
from napari_heartbox.batch import COLUMNS, run  # noqa: E402


def _cluster(n=2, **config):
    import logging

    import dask

    with dask.config.set(config):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR,
                               scheduler_kwargs={'dashboard_address': ':0'})
    return Client(cluster)


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp('batch') / 'archive'
    return root, make_archive(root)


@pytest.fixture(scope='module')
def client():
    c = _cluster(2)
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


@pytest.fixture(scope='module')
def serial(archive):
    """Each discovered series boxed in this process with plain ``propose`` (the reference)."""
    from napari_heartbox.io import open_ct
    from napari_heartbox.model import propose

    root, _ = archive
    jobs, _ = discover_series(root)
    out = {}
    for j in jobs:
        files = [root / f for f in j.files]
        out[j.case] = propose(open_ct(files[0] if j.kind == 'nifti' else files, series_uid=j.series_uid))
    return out


def _assert_same_as_serial(table, serial):
    assert sorted(table['case']) == sorted(serial)
    for r in table.to_dict('records'):
        s = serial[r['case']]
        assert r['status'] == 'done', (r['case'], r['error'])
        assert bool(r['found']) == s.found, r['case']
        assert r['confidence'] == pytest.approx(s.confidence, abs=1e-6), r['case']
        if s.found:
            got = ((r['z0'], r['z1']), (r['y0'], r['y1']), (r['x0'], r['x1']))
            assert got == tuple(tuple(v) for v in s.ranges), r['case']


# ------------------------------------------------------------------ discovery
def test_discovery_groups_series_across_folders_and_skips_with_reasons(archive):
    root, expect = archive
    jobs, skipped = discover_series(root)
    assert len(jobs) == expect['n_series']
    by_source = {}
    for j in jobs:
        by_source.setdefault(j.source, []).append(j)
    # the split series is one job holding the files of both folders
    (split,) = by_source[expect['split']]
    assert {Path(f).parent.name for f in split.files} == {'disc1', 'disc2'}
    # two series in one folder: two jobs, told apart by their UIDs
    assert len(by_source['two_series']) == 2
    assert len({j.series_uid for j in by_source['two_series']}) == 2
    # the copied folder is skipped as a duplicate; its original is boxed
    assert 'site_b/P00' in by_source and expect['duplicate'] not in by_source
    reasons = ' '.join(f'{s.path}: {s.reason}' for s in skipped)
    for word in expect['skipped_reasons']:
        assert word in reasons
    assert f"{expect['duplicate']}: duplicate of site_b/P00" in reasons
    # names are unique, file-system safe, paths relative
    assert len({j.case.lower() for j in jobs}) == len(jobs)
    assert all(re.fullmatch(r'[A-Za-z0-9._-]+', j.case) for j in jobs)
    assert all(not os.path.isabs(f) for j in jobs for f in j.files)


def test_resume_key_changes_when_the_file_list_does(tmp_path, archive):
    root, _ = archive
    src = tmp_path / 'tree'
    shutil.copytree(root / 'site_b' / 'P02', src / 'P02')
    (before,), _ = discover_series(src)
    assert discover_series(src)[0][0].key == before.key  # deterministic
    victim = sorted((src / 'P02').iterdir())[0]
    victim.unlink()
    (after,), _ = discover_series(src)
    assert after.key != before.key and len(after.files) == len(before.files) - 1


# ------------------------------------------------------------------ a full run
@pytest.fixture(scope='module')
def batch_out(archive, client, tmp_path_factory):
    root, _ = archive
    out = tmp_path_factory.mktemp('batch-out') / 'out'
    table = run(root, out, client=client, progress=False)
    return out, table


def test_two_worker_run_gives_the_serial_boxes(batch_out, serial):
    _, table = batch_out
    assert list(table.columns) == list(COLUMNS)
    _assert_same_as_serial(table, serial)
    assert table.attrs['computed'] == len(serial) and table.attrs['resumed'] == 0


def test_several_series_per_task_give_the_same_table(archive, client, serial, tmp_path):
    root, _ = archive
    table = run(root, tmp_path / 'out', client=client, progress=False, series_per_task=4)
    _assert_same_as_serial(table, serial)
    assert table.attrs['computed'] == len(serial)


def test_outputs_are_complete_valid_and_anonymous(batch_out, archive):
    import pandas as pd
    from test_worklist import sector_file_validator

    from napari_heartbox.sector_file import read_sector_file

    out, table = batch_out
    validator = sector_file_validator()
    for r in table.to_dict('records'):
        doc = json.loads((out / r['sector_file']).read_text())
        validator.validate(doc)
        assert doc['status'] == 'proposed' and doc['case'] == r['case']
        assert read_sector_file(out / r['sector_file']).sector.found == bool(r['found'])
        assert (out / r['thumbnail']).stat().st_size > 1000
    parquet = pd.read_parquet(out / 'results.parquet')
    csv = pd.read_csv(out / 'results.csv')
    assert list(parquet['case']) == list(csv['case']) == list(table['case'])
    # the corrupt slice is replaced with a warning, in the table and in both files
    row = table.set_index('case').loc['corrupt_slice']
    assert any('unreadable image' in w for w in row['warnings'])
    assert 'unreadable image' in csv.set_index('case').loc['corrupt_slice', 'warnings']
    # the heart-free series: no box, no failure
    assert not table.set_index('case').loc['abdomen_only', 'found']
    assert (out / 'failures.csv').read_text().strip() == 'case,source,series_uid,error'
    # no patient name or ID in any output, and no absolute path of this machine
    root, _ = archive
    for p in out.rglob('*'):
        if p.is_file() and p.suffix in ('.json', '.csv', '.html'):
            text = p.read_text()
            assert 'Synthetic^Phantom' not in text and 'SYNTHETIC' not in text, p
            assert str(root) not in text and str(out) not in text, p


def test_gallery_is_offline_and_lowest_confidence_first(batch_out):
    out, table = batch_out
    page = (out / 'index.html').read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page), 'an outside request'
    assert "default-src 'none'" in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(table) and all((out / s).is_file() for s in srcs)
    shown = re.findall(r'<h2><a href="cases/([^"]+)\.json">', page)
    conf = table.set_index('case')['confidence']
    assert [conf[c] for c in shown] == sorted(conf[c] for c in shown)


def test_batch_output_opens_as_a_worklist_and_trains_finetune(batch_out, archive):
    from napari_heartbox.corrected_cases import find_corrected_cases, load_case
    from napari_heartbox.io import load_ct
    from napari_heartbox.worklist import Worklist

    out, table = batch_out
    root, _ = archive
    wl = Worklist(None, out)  # no studies folder: the index says where they are
    assert wl.input == Path(root).resolve()
    assert [c.id for c in wl.cases] == sorted(table['case'])
    assert all(wl.status(c.id) == 'proposed' for c in wl.cases)
    # a folder holding two series: each case opens its own series
    pair = [c for c in wl.cases if c.source == 'two_series']
    shapes = {load_ct(c.path, series_uid=c.series_uid).shape[0] for c in pair}
    assert len(shapes) == 2
    # correct one of them in the worklist; the index keeps listing every series
    case = pair[0]
    sf = wl.record_of(case.id)
    fixed = sf.sector.with_ranges(z=(sf.sector.ranges[0][0] + 1, sf.sector.ranges[0][1]))
    try:
        wl.record(case.id, fixed, sf.proposal)
        again = Worklist(None, out)
        assert [c.id for c in again.cases] == [c.id for c in wl.cases]
        assert again.status(case.id) == 'corrected'
        (cc,) = find_corrected_cases(out)
        volume, box = load_case(cc)
        assert cc.series_uid == case.series_uid and box.ranges == fixed.ranges
        assert volume.grid == fixed.grid
    finally:  # leave the module's output as the batch wrote it
        wl.record(case.id, sf.corrected, sf.proposal, status='proposed')


def test_rerun_resumes_and_keeps_a_reviewed_box(batch_out, client, serial):
    from napari_heartbox.sector_file import read_sector_file, write_sector_file

    out, first = batch_out
    case = 'site_b__P04'
    f = out / 'cases' / f'{case}.json'
    sf = read_sector_file(f)

    edited = sf.sector.with_ranges(y=(sf.sector.ranges[1][0] + 2, sf.sector.ranges[1][1]))
    write_sector_file(f, edited, sf.proposal, status='accepted', case=case)
    try:
        # forget the record of the edited case and of one other: those two run again
        rerun = {case, 'split'}
        for r in first.to_dict('records'):
            if r['case'] in rerun:
                (out / '.heartbox-batch' / 'records' / f'{r["key"]}.json').unlink()
        table = run(_root_of(out), out, client=client, progress=False)
        assert table.attrs['computed'] == 2 and table.attrs['resumed'] == len(serial) - 2
        _assert_same_as_serial(table, serial)
        kept = read_sector_file(f)
        assert kept.status == 'accepted' and kept.sector.ranges == edited.ranges
        row = table.set_index('case').loc[case]
        assert any('kept the reviewed box' in w for w in row['warnings'])
    finally:
        write_sector_file(f, sf.corrected, sf.proposal, status='proposed', case=case)


def _root_of(out: Path) -> Path:
    d = json.loads((out / 'index.json').read_text())
    return Path(os.path.normpath(out / d['input']))


# ------------------------------------------------------------------ faults
class _CrashOnce(WorkerPlugin):
    """Kill the worker process the first time a task of ``case`` starts executing."""

    def __init__(self, case: str, marker: str, always: bool = False):
        self.case, self.marker, self.always = case, marker, always

    def transition(self, key, start, finish, **kwargs):
        hit = finish == 'executing' and f'-{self.case}-' in str(key)
        if hit and (self.always or not os.path.exists(self.marker)):
            Path(self.marker).touch()
            os._exit(1)


@contextlib.contextmanager
def _crashing_cluster(n, plugin, **config):
    """A fresh n-worker cluster whose workers run ``plugin`` (sent by value: the test module is
    not importable on the workers); closed, and the pickling rule undone, on exit."""
    import cloudpickle
    import test_batch

    cloudpickle.register_pickle_by_value(test_batch)
    c = _cluster(n, **config)
    try:
        c.register_plugin(plugin)
        yield c
    finally:
        cluster = c.cluster
        c.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(test_batch)


def test_a_killed_worker_loses_nothing(archive, serial, tmp_path):
    root, _ = archive
    marker = tmp_path / 'crashed'
    with _crashing_cluster(2, _CrashOnce('site_a__patient_07__study_1__CT_chest', str(marker))) as c:
        table = run(root, tmp_path / 'out', client=c, progress=False)
    assert marker.exists(), 'the worker was never killed'
    _assert_same_as_serial(table, serial)


def test_a_series_that_keeps_killing_its_worker_is_recorded(archive, tmp_path):
    root, _ = archive
    small = tmp_path / 'small'
    shutil.copytree(root / 'site_b' / 'P06', small / 'P06')
    plugin = _CrashOnce('P06', str(tmp_path / 'm'), always=True)
    with _crashing_cluster(1, plugin, **{'distributed.scheduler.allowed-failures': 0}) as c:
        table = run(small, tmp_path / 'out', client=c, progress=False)
    (row,) = table.to_dict('records')
    assert row['status'] == 'failed' and 'KilledWorker' in row['error'] and '\n' not in row['error']
    assert 'P06' in (tmp_path / 'out' / 'failures.csv').read_text()


def test_an_unreadable_series_fails_alone_and_is_retried(archive, client, tmp_path):
    root, _ = archive
    tree = tmp_path / 'tree'
    shutil.copytree(root / 'site_b' / 'P08', tree / 'good')
    shutil.copytree(root / 'site_b' / 'P10', tree / 'bad')
    for f in (tree / 'bad').iterdir():  # every slice's pixel data cut in half
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    out = tmp_path / 'out'
    table = run(tree, out, client=client, progress=False).set_index('case')
    assert table.loc['good', 'status'] == 'done' and table.loc['good', 'found']
    assert table.loc['bad', 'status'] == 'failed'
    err = table.loc['bad', 'error']
    assert 'bad' in err and '\n' not in err and 'Traceback' not in err
    again = run(tree, out, client=client, progress=False)
    assert again.attrs['computed'] == 1 and again.attrs['resumed'] == 1  # only the failure


def test_an_interrupted_run_resumes_without_redoing_finished_series(archive, serial, tmp_path):
    root, _ = archive
    out = tmp_path / 'out'
    seen = []

    def stop_after_five(done, total, row):
        seen.append(row['case'])
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(root, out, workers=2, dashboard=None, progress=stop_after_five)
    # consistent outputs from what finished: every listed file is complete and readable
    import pandas as pd

    part = pd.read_csv(out / 'results.csv')
    assert set(seen) <= set(part['case']) and len(part) < len(serial)
    for f in part['sector_file']:
        json.loads((out / f).read_text())
    json.loads((out / 'index.json').read_text())
    records = {p.name: p.stat().st_mtime_ns for p in (out / '.heartbox-batch' / 'records').iterdir()}
    table = run(root, out, workers=2, dashboard=None, progress=False)
    assert table.attrs['resumed'] == len(records)
    assert table.attrs['computed'] == len(serial) - len(records)
    _assert_same_as_serial(table, serial)
    for name, mtime in records.items():  # finished series were not redone
        assert (out / '.heartbox-batch' / 'records' / name).stat().st_mtime_ns == mtime


# ------------------------------------------------------------------ CLI
def test_cli_errors_are_one_line(tmp_path, capsys):
    from napari_heartbox.cli import main

    assert main(['batch', str(tmp_path / 'nope'), '--out', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'not a folder' in err
    (tmp_path / 'tree').mkdir()
    assert main(['batch', str(tmp_path / 'tree'), '--out', str(tmp_path / 'tree' / 'out')]) == 2
    assert 'must not be' in capsys.readouterr().err
    assert main(['batch', str(tmp_path / 'tree'), '--out', str(tmp_path / 'o'),
                 '--model', str(tmp_path / 'missing-model')]) == 2
    assert capsys.readouterr().err.strip().count('\n') == 0
