"""napari-heartbox benchmarks: ``python -m benchmarks`` (see ``benchmarks/README.md``).

Not part of the installed package. Generates its own synthetic inputs (phantom
CT written as DICOM in a temp dir), times each stage of the pipeline, the
batch-size curve of the ONNX graph, peak memory, and ratios against baselines
run in the same process (absolute times on a shared machine are noise).
"""
