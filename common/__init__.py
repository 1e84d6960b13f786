"""What training (`models/`) and serving (`server/`) share, without torch: the manifest of a model folder
(`model.json`) and how it is read and checksummed, file checksums, instance ids derived from a label map, and the
inference runtimes (OpenVINO, onnxruntime) that run the exported ONNX graphs. Imports neither `models` nor
`server`."""
