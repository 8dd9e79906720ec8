"""Export a learned policy for production. Only the ONNX export exists on this branch."""
