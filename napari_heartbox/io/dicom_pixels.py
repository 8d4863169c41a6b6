"""Pass 2 of DICOM loading: pixels into one preallocated int16 HU volume.

* The ``(Z, Y, X)`` int16 volume is allocated once.
* Uncompressed little-endian 16-bit images are read with ``readinto``
  straight into their volume slice from the PixelData offset found in pass 1
  (no header re-parse, no intermediate copy) and turned into HU in place:
  integer arithmetic when RescaleSlope is 1, a float32 temporary of one slice
  otherwise. Batches of slices run on a small thread pool (``readinto`` and
  the numpy passes release the GIL).
* Compressed images (JPEG, JPEG-LS, JPEG 2000, RLE) are decoded by pydicom
  (pylibjpeg plugins) on the same pool, overlapping with the uncompressed
  reads and with each other where the decoder releases the GIL.
* Peak memory is the volume plus a few slices.
* An image whose pixels cannot be read is replaced by its nearest readable
  neighbour and named in a warning.
"""

from __future__ import annotations

import math
import os
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import pydicom

from ..errors import CTLoadError
from .dicom_geometry import StackPlan
from .dicom_headers import NATIVE_TS, SliceHeader
from .dicom_select import name_list

__all__ = ['check_pixel_length', 'fill_volume', 'read_output_slices', 'stored_to_hu_inplace']

_I16 = np.iinfo(np.int16)


class _Clip:
    """Counts slices whose HU had to be clipped to int16."""

    def __init__(self):
        self.n = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        """Count one clipped slice (thread-safe)."""
        with self._lock:
            self.n += 1


#: plausible rescale: |RescaleSlope| in (0, MAX_SLOPE], |RescaleIntercept| <= MAX_INTERCEPT
MAX_SLOPE = 1e4
MAX_INTERCEPT = 1e5


def check_rescale(h: SliceHeader) -> None:
    """Raise ``OSError`` (the image counts as unreadable) for a non-finite or absurd rescale.

    A NaN or infinite RescaleSlope would turn every HU into 0 or NaN, an
    intercept of 1e30 overflows: such an image is skipped like a damaged one
    (replaced by its nearest readable neighbour, with a warning), never read
    as a silently wrong slice.
    """
    slope, ic = float(h.slope), float(h.intercept)
    if not (math.isfinite(slope) and math.isfinite(ic)) or not 0 < abs(slope) <= MAX_SLOPE or (
        abs(ic) > MAX_INTERCEPT
    ):
        raise OSError(f'implausible rescale (RescaleSlope {slope:g}, RescaleIntercept {ic:g})')


def stored_to_hu_inplace(a: np.ndarray, h: SliceHeader, clip: _Clip) -> None:
    """Turn raw 16-bit stored values held in int16 ``a`` into HU, in place.

    ``a`` holds the file's 16 bits per pixel reinterpreted as int16. Signed
    data with BitsStored < 16 are sign-extended from bit BitsStored-1;
    unsigned data are masked to BitsStored bits. Then
    ``HU = stored * slope + intercept``.
    """
    check_rescale(h)
    bs = h.bits_stored if h.bits_stored and 0 < h.bits_stored <= 16 else 16
    slope, ic = h.slope, h.intercept
    if h.pixel_rep == 1:
        if bs < 16:
            sh = np.int16(16 - bs)
            np.left_shift(a, sh, out=a)
            np.right_shift(a, sh, out=a)  # arithmetic shift: sign-extends
        src, lo, hi = a, -(1 << (bs - 1)), (1 << (bs - 1)) - 1
    else:
        u = a.view(np.uint16)
        if bs < 16:
            np.bitwise_and(u, np.uint16((1 << bs) - 1), out=u)
        src, lo, hi = u, 0, (1 << bs) - 1
    if slope == 1.0 and float(ic).is_integer():
        ic = int(ic)
        if not (lo + ic >= _I16.min and hi + ic <= _I16.max and hi <= _I16.max):
            lo, hi = int(src.min()), int(src.max())
        if lo + ic >= _I16.min and hi + ic <= _I16.max and hi <= _I16.max:
            if ic:
                np.add(a, np.int16(ic), out=a, casting='unsafe')
            return
        tmp = src.astype(np.int32) + ic
    else:
        tmp = src.astype(np.float32)
        tmp *= np.float32(slope)
        tmp += np.float32(ic)
        np.rint(tmp, out=tmp)
    if tmp.min() < _I16.min or tmp.max() > _I16.max:
        clip.add()
        np.clip(tmp, _I16.min, _I16.max, out=tmp)
    a[...] = tmp


def _decoded_to_hu(arr: np.ndarray, h: SliceHeader, clip: _Clip) -> np.ndarray:
    """HU int16 image from a decoded (already sign-corrected) stored array."""
    check_rescale(h)
    if arr.dtype.kind in 'iu' and h.slope == 1.0 and float(h.intercept).is_integer():
        tmp = arr.astype(np.int32) + int(h.intercept)
    else:
        tmp = arr.astype(np.float32) * np.float32(h.slope) + np.float32(h.intercept)
        np.rint(tmp, out=tmp)
    if tmp.min() < _I16.min or tmp.max() > _I16.max:
        clip.add()
        np.clip(tmp, _I16.min, _I16.max, out=tmp)
    return tmp.astype(np.int16)


def check_pixel_length(h: SliceHeader) -> None:
    """Refuse uncompressed pixel data longer than Rows × Columns × frames × bytes per pixel.

    Data that is too long means the header does not describe the image (Rows or
    Columns too small): read with those numbers it would come out sheared or as
    a part of the image, with no error. One padding byte (odd lengths) is allowed.
    Too short is reported when the read comes up short.
    """
    if h.ts_uid not in NATIVE_TS or h.pixel_length is None or not (h.rows and h.cols):
        return
    need = h.rows * h.cols * max(1, h.n_frames) * max(1, (h.bits_allocated or 16) // 8) * max(1, h.samples)
    if h.pixel_length > need + 1:
        raise OSError(
            f'pixel data holds {h.pixel_length} bytes but Rows x Columns = {h.rows} x {h.cols} '
            f'needs {need}: the header does not describe this image'
        )


def _read_native(h: SliceHeader, out: np.ndarray) -> None:
    """Read the raw pixel bytes of ``h`` into the int16 array ``out``."""
    check_pixel_length(h)
    with open(h.path, 'rb') as f:
        f.seek(h.pixel_offset)
        n = f.readinto(memoryview(out).cast('B'))
    if n != out.nbytes:
        raise OSError(f'truncated pixel data ({n} of {out.nbytes} bytes)')


def _decode_single(h: SliceHeader) -> np.ndarray:
    """Decode a single-frame image that is not plain 16-bit little endian."""
    check_pixel_length(h)
    ds = h.dataset
    if h.pixel_offset is not None and ds is not None:
        with open(h.path, 'rb') as f:
            f.seek(h.pixel_offset)
            data = f.read()
        if h.pixel_length is not None:
            data = data[: h.pixel_length]
        ds.PixelData = data
        elem = ds['PixelData']
        elem.VR = (
            'OB' if h.pixel_length is None or (h.bits_allocated or 16) <= 8 else 'OW'
        )
        elem.is_undefined_length = h.pixel_length is None
        try:
            return ds.pixel_array
        finally:
            del ds.PixelData
            h.dataset = None
    return pydicom.dcmread(h.path).pixel_array


_NATIVE_BATCH = 32  # uncompressed slices per pool task


class _Inline:
    """``submit`` runs the task now, in this thread (a pool of one task's worth)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - as a pool's worker does: the caller's result() raises it
            fut.set_exception(e)
        return fut


def _read_images(plan: StackPlan, indices, dest, clip: _Clip, tick) -> dict[int, str]:
    """Read images ``indices`` of ``plan`` as HU into ``dest(i)``, oriented.

    ``dest(i)`` returns the int16 ``(Y, X)`` array (a volume slice) that image
    ``i`` goes to; ``tick()`` is called once per image, from any thread.
    Returns ``{i: reason}`` for the images that could not be read.
    """
    failed: dict[int, str] = {}

    def place(i: int, img: np.ndarray):
        dest(i)[...] = plan.orient(img)

    def read_native_batch(idx: list[int]) -> None:
        tmp = (
            None
            if plan.identity_in_plane
            else np.empty((plan.slices[0].rows, plan.slices[0].cols), np.int16)
        )
        for i in idx:
            h = plan.slices[i]
            target = dest(i) if tmp is None else tmp
            try:
                _read_native(h, target)
                stored_to_hu_inplace(target, h, clip)
                if tmp is not None:
                    place(i, tmp)
            except OSError as e:
                failed[i] = str(e)
            tick()

    def decode_task(i: int):
        h = plan.slices[i]
        place(i, _decoded_to_hu(_decode_single(h), h, clip))

    by_file: dict = defaultdict(list)  # multi-frame files: decode once
    native, compressed = [], []
    for i in indices:
        h = plan.slices[i]
        if h.frame is not None:
            by_file[h.path].append(i)
        elif h.fast_native:
            native.append(i)
        else:
            compressed.append(i)

    workers = max(1, min(4, os.cpu_count() or 1))
    # uncompressed slices: read straight into place, in batches on the same pool
    # (readinto and the numpy HU pass release the GIL)
    batches = [native[k : k + _NATIVE_BATCH] for k in range(0, len(native), _NATIVE_BATCH)]
    # one task (a chunk of the lazy path, read from the model's own threads): no
    # pool to start and join, which would cost more than reading a few slices
    one_task = len(compressed) + len(batches) <= 1
    with nullcontext(_Inline()) if one_task else ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(decode_task, i): i for i in compressed}
        for fut in [pool.submit(read_native_batch, b) for b in batches]:
            fut.result()
        for path, idx in by_file.items():
            try:
                frames = pydicom.dcmread(path).pixel_array
                if frames.ndim == 2:
                    frames = frames[None]
                for i in idx:
                    h = plan.slices[i]
                    place(i, _decoded_to_hu(frames[h.frame], h, clip))
                    tick()
                del frames
            except Exception as e:  # noqa: BLE001 - reported per file
                for i in idx:
                    failed[i] = f'{type(e).__name__}: {e}'.splitlines()[0][:120]
                    tick()
        for fut, i in futures.items():
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - a corrupt image is skipped
                failed[i] = f'{type(e).__name__}: {e}'.splitlines()[0][:120]
            tick()
    return failed


def read_output_slices(plan: StackPlan, zs) -> tuple[np.ndarray, int]:
    """HU of the output slices ``zs`` only (the lazy path: a few slices of a series).

    Parameters
    ----------
    plan : StackPlan
        From the header pass.
    zs : sequence of int
        Output z indices (gap slices map to their source image, as in
        :func:`fill_volume`).

    Returns
    -------
    hu : numpy.ndarray
        int16 ``(len(zs), Y, X)``, in the order of ``zs``.
    n_clipped : int
        Images among those read whose HU had to be clipped to int16.

    Raises
    ------
    CTLoadError
        When one of the images cannot be read (the whole-volume path replaces
        it by a neighbour and warns; callers fall back to it).
    """
    src = [plan.source_of[int(z)] for z in zs]
    uniq = sorted(set(src))
    pos = {i: k for k, i in enumerate(uniq)}
    buf = np.empty((len(uniq), *plan.shape[1:]), np.int16)
    clip = _Clip()
    failed = _read_images(plan, uniq, lambda i: buf[pos[i]], clip, lambda: None)
    if failed:
        i = min(failed)
        raise CTLoadError(f'{plan.slices[i].path}: cannot read pixel data: {failed[i]}')
    if src == uniq:
        return buf, clip.n
    return buf[[pos[i] for i in src]], clip.n


def fill_volume(
    plan: StackPlan, *, progress=None, done0: int = 0, total: int | None = None
):
    """Build the HU volume described by ``plan``.

    Parameters
    ----------
    plan : StackPlan
        Slice order, shape and in-plane orientation.
    progress : callable, optional
        ``progress(done, total)`` after each image.
    done0, total : int
        Offset and total for ``progress`` (pass 1 counts first).

    Returns
    -------
    hu : numpy.ndarray
        int16 ``(Z, Y, X)``.
    warnings : list of str
    """
    hu = np.empty(plan.shape, dtype=np.int16)
    total = total or (done0 + len(plan.slices))
    clip = _Clip()
    done = done0
    tick_lock = threading.Lock()

    def tick():  # from the pool's threads too
        nonlocal done
        with tick_lock:
            done += 1
            if progress is not None:
                progress(done, total)

    failed = _read_images(
        plan, range(len(plan.slices)), lambda i: hu[plan.primary_z[i]], clip, tick
    )

    warnings = []
    if failed:
        ok = [i for i in range(len(plan.slices)) if i not in failed]
        bad_paths = [plan.slices[i].path for i in sorted(failed)]
        if not ok:
            first = plan.slices[min(failed)]
            raise CTLoadError(
                f'{first.path}: cannot read pixel data: {failed[min(failed)]}'
                + (
                    f' (nor of {len(failed) - 1} other image(s))'
                    if len(failed) > 1
                    else ''
                )
            )
        for i in failed:
            j = min(ok, key=lambda k: abs(k - i))
            hu[plan.primary_z[i]] = hu[plan.primary_z[j]]
        first_reason = failed[min(failed)]
        warnings.append(
            f'{len(failed)} unreadable image(s) replaced by the nearest readable slice: '
            f'{name_list(bad_paths)} ({first_reason})'
        )
    # gap filling: copies of the nearest real slice (see dicom_geometry)
    for z, i in enumerate(plan.source_of):
        if z != plan.primary_z[i]:
            hu[z] = hu[plan.primary_z[i]]
    if clip.n:
        warnings.append(
            f'HU values outside the int16 range were clipped in {clip.n} slice(s)'
        )
    return hu, warnings
