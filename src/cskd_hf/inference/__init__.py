"""Everything that scores: the ONNX export (`export`), scoring files and folders with PyTorch or ONNX Runtime
(`scoring`) and the `image-aesthetics` pipeline (`pipeline`). It never imports the trainers."""
