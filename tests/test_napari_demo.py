"""``napari-heartbox demo``: says what it would show without a display, and
runs unattended (screenshot + clean exit) under Xvfb."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _env(**kw):
    env = {
        k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY')
    }
    env.update(kw)
    return env


def test_demo_without_display_says_so():
    r = subprocess.run(
        [sys.executable, '-m', 'napari_heartbox', 'demo'],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert 'no display here' in r.stdout
    assert 'Synthetic chest CT' in r.stdout and 'Heart sector' in r.stdout


@pytest.mark.gui
@pytest.mark.slow
def test_demo_under_xvfb_saves_a_screenshot_and_exits(tmp_path):
    if not os.environ.get('DISPLAY'):
        pytest.skip('needs an X display: run under xvfb-run')
    shot = tmp_path / 'demo.png'
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'napari_heartbox',
            'demo',
            '--screenshot',
            str(shot),
            '--exit-after',
            '0',
        ],
        env=_env(DISPLAY=os.environ['DISPLAY']),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'screenshot saved to {shot}' in r.stdout
    assert shot.read_bytes()[:4] == b'\x89PNG'


@pytest.mark.parametrize(
    ('env', 'expected'),
    [
        ({}, (False, 0.0)),  # someone is watching: the window stays until closed
        ({'CI': 'true'}, (True, 2.0)),
        ({'XAUTHORITY': '/tmp/xvfb-run.abc/Xauthority'}, (True, 2.0)),
        ({'HEARTBOX_DEMO_EXIT': '5'}, (True, 5.0)),
        ({'HEARTBOX_DEMO_EXIT': '-1'}, (True, 0.0)),
        ({'HEARTBOX_DEMO_EXIT': 'soon'}, (True, 2.0)),  # unreadable: the default linger
    ],
)
def test_unattended_reads_the_environment(monkeypatch, env, expected):
    from napari_heartbox.cli._demo import _unattended

    for k in ('HEARTBOX_DEMO_EXIT', 'CI', 'XAUTHORITY'):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _unattended() == expected
