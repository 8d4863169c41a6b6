"""Write a :class:`~napari_heartbox.volume.CTVolume` as a synthetic DICOM series.

Used by the tests, the browser tests and the benchmarks to produce realistic
CT Image Storage series of any size without touching real patient data.

Conventions
-----------
* One file per z slice; ``hu[k]`` (z index ``k``, 0 = most inferior) is
  written as one single-frame CT image.
* Geometry comes from the volume's voxel→LPS affine (voxel *centres*):
  ImagePositionPatient of slice ``k`` is ``affine @ (k, 0, 0, 1)`` (the centre
  of its first pixel), the row direction cosine (first three values of
  ImageOrientationPatient, direction of increasing *column* index ``x``) is
  the affine's x column, the column cosine (increasing *row* index ``y``) is
  its y column. A sheared affine (gantry tilt) therefore writes a tilted
  series, and GantryDetectorTilt is set to the shear angle.
* Stored values are ``(HU - intercept) / slope``, rounded, as int16
  (``unsigned=False``) or uint16 (``unsigned=True``). Readers recover HU as
  ``stored * slope + intercept``.
* Files are written with a fast path: pydicom encodes the header once, with
  fixed-width sentinels for the per-slice values (SOPInstanceUID,
  InstanceNumber, ImagePositionPatient, SliceLocation) that are then patched
  as bytes; the PixelData element is appended as raw little-endian bytes.
  Per-slice numbers are therefore written zero-padded with a sign
  (``+00000012.500000``, ``+0000007``), which is valid DS/IS.
* Lossless compressed transfer syntaxes (RLE, JPEG-LS, JPEG 2000, JPEG
  Lossless SV1, HTJ2K) use the same header template, built with the
  compressed TransferSyntaxUID; each slice is encoded as one frame and
  appended as encapsulated PixelData (empty Basic Offset Table, one fragment).
  The encoders come from pydicom (RLE, JPEG-LS via pyjpegls, JPEG 2000 via
  pylibjpeg-openjpeg) or imagecodecs (JPEG Lossless, HTJ2K); the optional ones
  are imported only when their syntax is asked for.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from ..volume import CTVolume

__all__ = ['TRANSFER_SYNTAXES', 'write_dicom_series']

_MANUFACTURER = 'napari-heartbox synthetic'
_PIXEL_DATA_TAG = struct.pack('<HH', 0x7FE0, 0x0010)
_ITEM_TAG = struct.pack('<HH', 0xFFFE, 0xE000)
_SEQ_DELIM = struct.pack('<HHI', 0xFFFE, 0xE0DD, 0)
# encapsulated PixelData: OB, undefined length, then an empty Basic Offset Table item
_ENCAPSULATED_HEADER = (
    _PIXEL_DATA_TAG
    + b'OB\x00\x00'
    + struct.pack('<I', 0xFFFFFFFF)
    + _ITEM_TAG
    + b'\0' * 4
)

_UNCOMPRESSED_TS = {
    'explicit': ExplicitVRLittleEndian,
    'implicit': ImplicitVRLittleEndian,
}
_COMPRESSED_TS = {
    'rle': RLELossless,
    'jpeg-ls': JPEGLSLossless,
    'j2k': JPEG2000Lossless,
    'jpeg-lossless': JPEGLosslessSV1,
    'htj2k': HTJ2KLossless,
}
TRANSFER_SYNTAXES = (*_UNCOMPRESSED_TS, *_COMPRESSED_TS)


def _missing(transfer_syntax: str, package: str, pip: str | None = None) -> ImportError:
    return ImportError(
        f'transfer_syntax {transfer_syntax!r} needs {package}: pip install {pip or package}'
    )


def _imagecodecs(transfer_syntax: str, func: str):
    try:
        import imagecodecs
    except ImportError:
        raise _missing(transfer_syntax, 'imagecodecs') from None
    codec = getattr(imagecodecs, func, None)
    check = getattr(imagecodecs, func.replace('_encode', '').upper(), None)
    if codec is None or (check is not None and not getattr(check, 'available', True)):
        raise ImportError(
            f'transfer_syntax {transfer_syntax!r} needs imagecodecs with {func}: '
            'pip install --upgrade imagecodecs'
        )
    return codec


def _frame_encoder(
    transfer_syntax: str, rows: int, cols: int, signed: bool
) -> Callable[[np.ndarray], bytes]:
    """``stored (rows, cols) int16/uint16 -> one lossless compressed frame``.

    Raises a one-line ImportError naming the package to install when the
    encoder for ``transfer_syntax`` is not available.
    """
    if transfer_syntax == 'jpeg-lossless':
        # libjpeg-turbo 3 lossless (SOF3, first-order prediction); the JPEG
        # codestream has no sign, DICOM stores the two's-complement bit pattern
        jpeg8_encode = _imagecodecs(transfer_syntax, 'jpeg8_encode')
        return lambda a: jpeg8_encode(
            a.view(np.uint16), lossless=True, predictor=1, bitspersample=16
        )
    if transfer_syntax == 'htj2k':
        # OpenJPH; int16 input gives a signed codestream, as PixelRepresentation 1 asks
        htj2k_encode = _imagecodecs(transfer_syntax, 'htj2k_encode')
        return lambda a: htj2k_encode(a, reversible=True)

    from pydicom.pixels import encoders

    encoder, package, pip = {
        'rle': (encoders.RLELosslessEncoder, 'pylibjpeg-rle', None),
        'jpeg-ls': (encoders.JPEGLSLosslessEncoder, 'pyjpegls', None),
        'j2k': (
            encoders.JPEG2000LosslessEncoder,
            'pylibjpeg-openjpeg',
            'pylibjpeg pylibjpeg-openjpeg',
        ),
    }[transfer_syntax]
    plugins = encoder.available_plugins
    if not plugins:
        raise _missing(transfer_syntax, package, pip)
    if transfer_syntax == 'j2k' and min(rows, cols) < 32:
        raise ValueError(
            f"transfer_syntax 'j2k' needs images of at least 32 x 32 pixels "
            f'(pylibjpeg-openjpeg uses 6 resolution levels), got {rows} x {cols}'
        )
    plugin = ''
    if transfer_syntax == 'rle':
        # pylibjpeg-rle (Rust) is ~10x faster than pydicom's own encoder
        plugin = 'pylibjpeg' if 'pylibjpeg' in plugins else 'pydicom'
    kwargs = {
        'rows': rows,
        'columns': cols,
        'samples_per_pixel': 1,
        'bits_allocated': 16,
        'bits_stored': 16,
        'pixel_representation': 1 if signed else 0,
        'photometric_interpretation': 'MONOCHROME2',
        'number_of_frames': 1,
    }
    # the pydicom encoders hold the GIL (and pylibjpeg-openjpeg's is not
    # thread safe), so slices are encoded one after the other
    return lambda a: bytes(encoder.encode(a, encoding_plugin=plugin, **kwargs))


def _encapsulated(frame: bytes) -> bytes:
    """Encapsulated PixelData element holding one frame in one fragment."""
    pad = b'\0' if len(frame) % 2 else b''
    return b''.join(
        (
            _ENCAPSULATED_HEADER,
            _ITEM_TAG,
            struct.pack('<I', len(frame) + len(pad)),
            frame,
            pad,
            _SEQ_DELIM,
        )
    )


def _uid(seed: int, *parts) -> str:
    """Deterministic UID from a seed and a purpose string."""
    return generate_uid(entropy_srcs=['napari-heartbox', str(seed), *map(str, parts)])


def _ds_str(v: float) -> str:
    """Format a float for a DS element (at most 16 characters)."""
    s = f'{v:.6f}'.rstrip('0').rstrip('.')
    if s in ('-0', ''):
        s = '0'
    if len(s) > 16:
        s = f'{v:.8g}'
    return s


def _ds_fixed(v: float) -> str:
    """A DS value of exactly 16 characters (sign, zero-padded, 6 decimals).

    pydicom keeps such strings verbatim (it strips padding spaces), so the
    header template can be patched byte for byte.
    """
    text = f'{v:+016.6f}'
    if len(text) != 16:
        raise ValueError(f'coordinate {v} is too large for a DICOM DS value')
    return text


def _stored_range(hu: np.ndarray, slope: float, intercept: float, dtype: np.dtype):
    """Check the whole volume fits ``dtype`` once; return ``k -> stored slice``."""
    info = np.iinfo(dtype)
    lo = (float(hu.min()) - intercept) / slope
    hi = (float(hu.max()) - intercept) / slope
    lo, hi = sorted((round(lo), round(hi)))
    if lo < info.min or hi > info.max:
        raise ValueError(
            f'stored values {lo}..{hi} do not fit {dtype.name} with '
            f'slope={slope} intercept={intercept}'
        )
    out = dtype.newbyteorder('<')
    if slope == 1.0 and float(intercept).is_integer():
        ic = int(intercept)
        return lambda k: np.subtract(hu[k], ic, dtype=np.int32).astype(out)
    return lambda k: np.rint((hu[k].astype(np.float32) - intercept) / slope).astype(out)


def write_dicom_series(
    volume: CTVolume,
    folder,
    *,
    transfer_syntax: str = 'explicit',
    unsigned: bool = False,
    slope: float = 1.0,
    intercept: float = -1024.0,
    shuffle_names: bool = False,
    series_uid: str | None = None,
    modality: str = 'CT',
    image_orientation: Sequence[float] | None = None,
    file_prefix: str = '',
    seed: int = 0,
    study_uid: str | None = None,
    series_description: str = 'Synthetic CT',
    slice_thickness: float | None = None,
    image_type: Sequence[str] = ('ORIGINAL', 'PRIMARY', 'AXIAL'),
    sop_class_uid: str = CTImageStorage,
) -> list[Path]:
    """Write ``volume`` as a single-frame CT Image Storage series.

    Parameters
    ----------
    volume : CTVolume
        HU voxels ``(Z, Y, X)`` and their LPS grid.
    folder : str or Path
        Output folder (created if missing). Existing files with the same
        names are overwritten.
    transfer_syntax : {'explicit', 'implicit', 'rle', 'jpeg-ls', 'j2k', \
'jpeg-lossless', 'htj2k'}
        Explicit or Implicit VR Little Endian (both uncompressed), or one of
        the lossless compressed syntaxes (explicit VR, one encapsulated frame
        per file, LossyImageCompression '00'):

        * ``'rle'``: RLE Lossless 1.2.840.10008.1.2.5 (pydicom; pylibjpeg-rle
          when installed, else pydicom's slower native encoder);
        * ``'jpeg-ls'``: JPEG-LS Lossless 1.2.840.10008.1.2.4.80 (pydicom via
          pyjpegls);
        * ``'j2k'``: JPEG 2000 Lossless 1.2.840.10008.1.2.4.90 (pydicom via
          pylibjpeg-openjpeg);
        * ``'jpeg-lossless'``: JPEG Lossless SV1 1.2.840.10008.1.2.4.70
          (imagecodecs, libjpeg-turbo lossless);
        * ``'htj2k'``: HTJ2K Lossless 1.2.840.10008.1.2.4.201 (imagecodecs,
          OpenJPH).

        The stored values are the same as for the uncompressed syntaxes.
        An ImportError naming the package to install is raised, before any
        file is written, when the syntax's encoder is missing; ``'j2k'``
        needs images of at least 32 x 32 pixels (ValueError otherwise).
    unsigned : bool
        Store uint16 (PixelRepresentation 0) instead of int16.
    slope, intercept : float
        RescaleSlope / RescaleIntercept; stored = (HU - intercept) / slope.
    shuffle_names : bool
        Give files names whose order is a random permutation of the slice
        order (readers must sort by position, not by name). InstanceNumber is
        shuffled the same way.
    series_uid, study_uid : str, optional
        UIDs to use; deterministic ones derived from ``seed`` otherwise.
    modality : str
        The Modality tag (write 'MR' etc. to test non-CT refusal).
    image_orientation : sequence of 6 float, optional
        Override ImageOrientationPatient. Then slice ``k`` is placed at
        ``origin + k * dz * n`` with ``n = row × col`` (a consistent stack in
        that orientation, e.g. ``(1, 0, 0, 0, 0, -1)`` for a coronal series),
        where ``origin`` is the affine's translation.
    file_prefix : str
        Prefix of every file name (``<prefix><number>.dcm``).
    seed : int
        Seed for UIDs and the name shuffle.
    series_description : str
        SeriesDescription.
    slice_thickness : float, optional
        SliceThickness in mm; defaults to the slice spacing ``dz``.
    image_type : sequence of str
        ImageType values (e.g. ``('ORIGINAL', 'PRIMARY', 'LOCALIZER')``).
    sop_class_uid : str
        SOPClassUID (CT Image Storage by default).

    Returns
    -------
    list of Path
        The written files in z order (``paths[k]`` holds ``hu[k]``).
    """
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(
            f'transfer_syntax must be one of {", ".join(map(repr, TRANSFER_SYNTAXES))}, '
            f'got {transfer_syntax!r}'
        )
    if slope == 0:
        raise ValueError('slope must not be 0')
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu = volume.hu
    nz, ny, nx = hu.shape
    dz, dy, dx = volume.spacing
    a = volume.grid.matrix
    origin = a[:3, 3]
    if image_orientation is None:
        row_cos = a[:3, 2] / np.linalg.norm(a[:3, 2])  # increasing column x
        col_cos = a[:3, 1] / np.linalg.norm(a[:3, 1])  # increasing row y
        positions = [a[:3, 0] * k + origin for k in range(nz)]
    else:
        iop = np.asarray(image_orientation, dtype=float)
        if iop.shape != (6,):
            raise ValueError('image_orientation must have 6 values')
        row_cos, col_cos = iop[:3], iop[3:]
        normal = np.cross(row_cos, col_cos)
        positions = [origin + k * dz * normal for k in range(nz)]
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    # gantry tilt = angle between the slice step and the slice normal
    step = positions[1] - positions[0] if nz > 1 else normal
    cos_t = abs(float(np.dot(step, normal))) / max(np.linalg.norm(step), 1e-12)
    tilt_deg = float(np.degrees(np.arccos(min(1.0, cos_t))))

    rng = np.random.default_rng(seed)
    order = rng.permutation(nz) if shuffle_names else np.arange(nz)
    series_uid = series_uid or _uid(seed, 'series', series_description)
    study_uid = study_uid or _uid(seed, 'study')
    for_uid = _uid(seed, 'frame-of-reference')
    compressed = transfer_syntax in _COMPRESSED_TS
    ts_uid = (_COMPRESSED_TS if compressed else _UNCOMPRESSED_TS)[transfer_syntax]
    dtype = np.dtype(np.uint16 if unsigned else np.int16)
    # before any file is written: a missing encoder is a one-line error
    encode = (
        _frame_encoder(transfer_syntax, ny, nx, not unsigned) if compressed else None
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.TransferSyntaxUID = ts_uid
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = 'ISO_IR 100'
    ds.ImageType = list(image_type)
    ds.SOPClassUID = sop_class_uid
    ds.StudyDate = '20000101'
    ds.Modality = modality
    ds.Manufacturer = _MANUFACTURER
    ds.SeriesDescription = series_description
    ds.PatientName = 'Synthetic^Phantom'
    ds.PatientID = 'SYNTHETIC'
    ds.SliceThickness = _ds_str(dz if slice_thickness is None else slice_thickness)
    if tilt_deg > 1e-3:
        ds.GantryDetectorTilt = _ds_str(tilt_deg)
    ds.PatientPosition = 'HFS'
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = '1'
    ds.SeriesNumber = 1
    ds.FrameOfReferenceUID = for_uid
    ds.ImageOrientationPatient = [_ds_str(v) for v in (*row_cos, *col_cos)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.Rows = ny
    ds.Columns = nx
    ds.PixelSpacing = [_ds_str(dy), _ds_str(dx)]  # row spacing, column spacing
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0 if unsigned else 1
    ds.RescaleIntercept = _ds_str(intercept)
    ds.RescaleSlope = _ds_str(slope)
    ds.RescaleType = 'HU'
    if compressed:
        ds.LossyImageCompression = '00'

    nbytes = ny * nx * 2
    if transfer_syntax == 'explicit':
        pixel_header = _PIXEL_DATA_TAG + b'OW\x00\x00' + struct.pack('<I', nbytes)
    else:
        pixel_header = _PIXEL_DATA_TAG + struct.pack('<I', nbytes)

    # Header template: pydicom encodes the header once, with fixed-width
    # sentinels for the per-slice values, which are then patched as bytes.
    # deterministic from seed and series (pydicom's prefix=None UIDs are random); a
    # '2.25.' UUID-style root leaves room for the per-slice suffix within 64 characters
    digest = hashlib.sha256(f'napari-heartbox|{seed}|sop|{series_uid}'.encode()).hexdigest()
    sop_root = f'2.25.{int(digest[:30], 16)}'
    sentinel_uid = f'{sop_root}.9999999'
    sentinel_ipp = [_ds_fixed(987654.000001 + 0.000001 * i) for i in range(3)]
    sentinel_loc = _ds_fixed(987654.000009)
    sentinel_num = f'{987654:+08d}'
    ds.SOPInstanceUID = sentinel_uid
    meta.MediaStorageSOPInstanceUID = sentinel_uid
    ds.InstanceNumber = sentinel_num
    ds.ImagePositionPatient = sentinel_ipp
    ds.SliceLocation = sentinel_loc
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    template = buf.getvalue()
    ipp_bytes = '\\'.join(sentinel_ipp).encode()
    counts = [
        template.count(sentinel_uid.encode()),
        template.count(ipp_bytes),
        template.count(sentinel_loc.encode()),
        template.count(sentinel_num.encode()),
    ]
    if counts != [2, 1, 1, 1]:  # pragma: no cover - pydicom changed its encoding
        raise RuntimeError(f'header template sentinels not found as expected: {counts}')

    stored_all = _stored_range(hu, slope, intercept, dtype)
    paths: list[Path] = []
    for k in range(nz):
        pos = positions[k]
        header = (
            template.replace(
                sentinel_uid.encode(), f'{sop_root}.{1000000 + k}'.encode()
            )
            .replace(ipp_bytes, '\\'.join(_ds_fixed(v) for v in pos).encode())
            .replace(
                sentinel_loc.encode(), _ds_fixed(float(np.dot(pos, normal))).encode()
            )
            .replace(sentinel_num.encode(), f'{int(order[k]) + 1:+08d}'.encode())
        )
        path = folder / f'{file_prefix}{int(order[k]) + 1:05d}.dcm'
        with open(path, 'wb') as f:
            f.write(header)
            if encode is None:
                f.write(pixel_header)
                f.write(stored_all(k).tobytes())
            else:
                f.write(_encapsulated(encode(stored_all(k))))
        paths.append(path)
    return paths
