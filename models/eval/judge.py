"""The judge: our segmenter (`models/nets/segmenter.py`) standing in for the papers' DeepLab / Inception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class Judge:
    """The trained segmenter at its training resolution; images are resized to it and logits back."""

    def __init__(self, checkpoint: str | Path, batch: int = 16) -> None:
        from models.archs.segmenter import load_segmenter

        self.net, self.size, self.info = load_segmenter(checkpoint)
        self.net.eval()
        self.batch = batch

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        x = (
            torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        )  # [B,3,H,W]
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        return x

    @torch.no_grad()
    def segment(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [B,H,W,3] → (predicted ids [B,H,W] uint8 at the images' size, pooled features [B,D])."""
        preds, feats = [], []
        for start in range(0, len(images), self.batch):
            chunk = images[start : start + self.batch]
            logits, features = self.net.logits_and_features(self._tensor(chunk))
            logits = F.interpolate(logits, size=chunk.shape[1:3], mode="bilinear", align_corners=False)
            preds.append(logits.argmax(1).to(torch.uint8).numpy())
            feats.append(features.numpy())
        return np.concatenate(preds), np.concatenate(feats)

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B,h,w,3] (any size, e.g. crops; not resized) → pooled features [B,D]."""
        out = []
        for start in range(0, len(images), self.batch):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch]))
            out.append(self.net.features(x.permute(0, 3, 1, 2).float() / 127.5 - 1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.net.feature_dim), np.float32)
