"""`collage eval`: score an exported model folder the papers' way, with a judge trained here.

SPADE and DP-GAN score label alignment with a pretrained segmenter and realism with FID. Neither DeepLab nor
Inception weights can be had here, so the judge is our own segmentation net (`models/nets/segmenter.py`,
trained with `collage train --arch segmenter` under strong colour augmentation so it must read texture and
shape). Everything runs the exported ONNX graphs on the server's runtimes (`common/runtime.py`: OpenVINO or
onnxruntime, f32 or bf16, chosen by `--runtime` / `--precision`, by default as the server chooses), so the
numbers are those of what is served; eval.json's `info.runtime` records what ran.

Latent z. Primary: "encoded" — z = μ of encoder.onnx on the reference render of the same layout. That pairs
each generated image with a render in the same style, so per-class texture can be compared like for like, and
it is the path a user takes when uploading a reference. Also reported: "random" — z =
default_rng(i).standard_normal(z_dim) for layout i (the contract's seeded style), the "random style" button;
it shows how good the prior is. Models without an encoder get only "random".

Metrics (each beside its ceiling / floor / flat-colour baseline, where "flat" fills each class with its mean
training colour):
- segmentation: judge mIoU and pixel accuracy against the input label map, for generated images, the reference
  renders (ceiling) and flat;
- FD-seg: Fréchet distance between the judge's pooled features of a set and of the held-out renders; the
  reference renders give the floor (renders vs renders), flat the baseline; per-class crop FD-seg for the thing
  classes (square crops around instance boxes, resized to CROP_SIZE);
- texture: per class, variance of the Laplacian of luminance inside the class (borders excluded),
  generated / reference; the fraction of classes within TEXTURE_RANGE;
- streak coherence: per class, the correlation between the horizontal luminance gradients of rows y and
  y + STREAK_ROWS inside the class (vertical "planks" score near 1), for the generated set and for the reference
  renders; the number of classes at most STREAK_MARGIN above the renders' (the texture ratio cannot see planks:
  they have the right energy, all in one direction);
- style fidelity: encode a reference render of each family, generate on eval layouts, and check whether the
  output's colour statistics lie nearest the reference family's centroid (accuracy over families); the same
  classifier on renders of those layouts in the reference's style is its ceiling;
- out-of-family styles: references rendered in free styles (off the seven families) are painted on their own
  layouts with their encoded style and with each preset; the mean per-class Lab error (CIE76 ΔE) of the encoded
  pictures against the best preset's for each reference (`free_styles`, `--free-refs`);
- latency: the runtime set up as the server runs it (2 threads), batch 1, median over
  LATENCY_RUNS frames at `--size`, the evaluated folders taking turns frame by frame, on the CPU named in
  eval.json's `info`.

CollageGAN stage: a model with class generators is also judged with its composition stage
(`common.collage.compose`, the server's) on the same base pictures — mIoU, per-class IoU and crop FD-seg
without | with, the stage's median ms per picture and per instance beside the base generator's latency, and
issue 21's checks on the difference (`stage`); `--no-collage` skips it.

Where it lives: `metrics` (numpy scores), `judge` (the segmenter), `onnx_model` (an exported folder on a
runtime), `meter` (scores gathered over one set of images), `data` (the evaluation sets, their seeds and
their disjointness from training), `report` (one model's numbers, the acceptance checks, eval.json and
model.json), `stage` (the CollageGAN stage without | with), `free_styles` (the out-of-family styles) and `cli`
(the `collage eval` command).
"""
