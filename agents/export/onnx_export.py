"""The learned network as ONNX, checked against torch on sampled observations.

Why a wrapper: SB3's MultiDiscrete policy returns logits per component; production wants
the deterministic action, so the exported graph ends in the per-component argmax. Export
uses the TorchScript exporter (``dynamo=False``), opset 17, a dynamic batch axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import InputError


def _wrapper(model: Any) -> Any:
    import torch

    policy = model.policy
    nvec = [int(n) for n in model.action_space.nvec]

    class Deterministic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            feats = self.policy.extract_features(obs, self.policy.pi_features_extractor)
            latent = self.policy.mlp_extractor.forward_actor(feats)
            logits = self.policy.action_net(latent)
            parts = torch.split(logits, nvec, dim=1)
            return torch.stack([p.argmax(dim=1) for p in parts], dim=1)

    return Deterministic().eval()


def export_onnx(model_zip: Path, out: Path) -> Path:
    """Write the deterministic policy of an SB3 PPO/A2C ``model.zip`` as ONNX to ``out``."""
    if not model_zip.exists():
        raise InputError(f"{model_zip}: no such model file")
    import torch
    from stable_baselines3 import PPO

    model = PPO.load(str(model_zip), device="cpu")
    net = _wrapper(model)
    shape = tuple(int(d) for d in model.observation_space.shape or ())
    dummy = torch.zeros((1, *shape), dtype=torch.float32)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.onnx.export(
        net,
        (dummy,),
        str(tmp),
        dynamo=False,
        opset_version=17,
        input_names=["obs"],
        output_names=["action"],
        dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
    )
    tmp.replace(out)
    return out


def agreement(model_zip: Path, onnx_path: Path, n: int = 1000, seed: int = 0) -> float:
    """Share of ``n`` observations (uniform in the observation box, seeded) on which
    onnxruntime's action equals SB3's deterministic ``predict``, all components equal."""
    import onnxruntime as ort
    from stable_baselines3 import PPO

    model = PPO.load(str(model_zip), device="cpu")
    rng = np.random.default_rng(seed)
    space: Any = model.observation_space
    shape = tuple(int(d) for d in space.shape)
    obs = rng.uniform(space.low, space.high, size=(n, *shape)).astype(np.float32)
    ref, _ = model.predict(obs, deterministic=True)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["action"], {"obs": obs})[0]
    return float(np.mean(np.all(np.asarray(ref) == np.asarray(got), axis=1)))
