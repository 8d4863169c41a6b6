"""The heart model: ONNX graph runtime and post-processing to a Sector."""
