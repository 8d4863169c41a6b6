"""The limits every ONNX graph of the package is held to (issue 3), in one place
for ``test_model_graph`` and ``test_perf_guards``."""

#: Standard ai.onnx ops with a kernel in onnxruntime's CPU execution provider that
#: onnxruntime-web's wasm build ships; the graphs must use nothing else.
WASM_OPS = frozenset({
    'Add', 'Cast', 'Clip', 'Concat', 'Constant', 'Conv', 'Div', 'Gather', 'Gemm',
    'Greater', 'If', 'Mul', 'Pad', 'ReduceMax', 'ReduceMean', 'ReduceSum', 'Relu',
    'Reshape', 'Resize', 'Shape', 'Sigmoid', 'Squeeze', 'Sub', 'Unsqueeze', 'Identity',
    'MatMul', 'Transpose', 'Slice', 'Equal', 'Floor', 'Max', 'Min', 'GlobalAveragePool',
})  # fmt: skip
MAX_OPSET = 17
MAX_PARAMS = 60_000  # issue 3: <= 60k parameters
MAX_BYTES = 250_000  # issue 3: <= 250 KB (decimal kilobytes: the stricter reading)
