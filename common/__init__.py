"""What training (`models/`) and serving (`server/`) share, without torch: file checksums and the inference
runtimes (OpenVINO, onnxruntime) that run the exported ONNX graphs. Imports neither `models` nor `server`."""
