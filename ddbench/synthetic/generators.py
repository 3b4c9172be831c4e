"""Generators that a synthetic set can consist of, so that an artifact can be materialised at any resolution.

The generator's type, configuration and noise seed are stored in the artifact's ``info["generator"]``, its
tensors in ``extras`` under ``generator.<parameter>``; :func:`materialise` rebuilds it from the artifact alone
(no method code) and samples clouds of any number of points.

``conditional_siren`` (DD3D, docs/specification.md#dd3d-generator): per-point noise u ~ U[0, 1) of shape (M, N, 1) picks the
resolution N; two SIREN layers of width 256 (first-layer frequency ``w0``: 100 for ModelNet, 50 for ScanObjectNN,
400 for part segmentation; later layers ``w0_hidden`` = 1, as DD3D's released generator: its ``SirenNet`` keeps
the default ``w0 = 1.`` for every layer after the first, CINR.py:75 and 89), each activation multiplied by a
per-cloud modulation (an embedding per synthetic cloud -> ReLU, then Linear + ReLU for each further layer); an
output Linear 256-3 without bias and tanh.

Initialisation follows SIREN's rule as the released code applies it (CINR.py:55-62, 104): the first layer's weight
and bias U(-1/fan_in, 1/fan_in); every later layer's weight and bias, the output layer's included, U(-b, b) with
b = sqrt(6 / fan_in) / w0_hidden (the output layer is a SIREN layer of frequency ``w0_hidden`` whose activation is
tanh). The modulation layers and the codes keep PyTorch's defaults (nn.Linear, nn.Embedding), as in the code.
A stored generator keeps its ``w0_hidden`` in its config, so artifacts made with 30 (ddbench's DD3D v1) rebuild
as they were trained.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ddbench.errors import ArtifactError

PREFIX = "generator."


def siren_bound(fan_in: int, w0: float, first: bool) -> float:
    """SIREN's uniform bound of a layer's weights (and biases): 1/fan_in for the first layer, else
    sqrt(6/fan_in)/w0."""
    return 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / w0


def siren_init_(layer: nn.Linear, w0: float, first: bool) -> None:
    """Draw ``layer``'s weight and bias (if any) from U(-b, b), b = :func:`siren_bound`."""
    bound = siren_bound(layer.in_features, w0, first)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound)


class ConditionalSiren(nn.Module):
    def __init__(self, num_clouds: int, hidden: int = 256, layers: int = 2, w0: float = 100.0,
                 w0_hidden: float = 1.0):
        super().__init__()
        self.config = {"num_clouds": num_clouds, "hidden": hidden, "layers": layers, "w0": w0, "w0_hidden": w0_hidden}
        self.codes = nn.Embedding(num_clouds, hidden)
        self.first = nn.Linear(1, hidden)
        self.hidden_layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.modulations = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.out = nn.Linear(hidden, 3, bias=False)
        self.w0, self.w0_hidden = w0, w0_hidden
        siren_init_(self.first, w0, first=True)
        for layer in (*self.hidden_layers, self.out):
            siren_init_(layer, w0_hidden, first=False)

    def forward(self, cloud_ids: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """(M,) cloud indices and (M, N, 1) noise -> (M, N, 3) points in [-1, 1]."""
        m = torch.relu(self.codes(cloud_ids))
        h = torch.sin(self.w0 * self.first(noise)) * m.unsqueeze(1)
        for layer, modulation in zip(self.hidden_layers, self.modulations):
            m = torch.relu(modulation(m))
            h = torch.sin(self.w0_hidden * layer(h)) * m.unsqueeze(1)
        return torch.tanh(self.out(h))

    def sample(self, points: int, generator: torch.Generator, device=None) -> torch.Tensor:
        """Every cloud at ``points`` points, with noise drawn from ``generator``."""
        n = self.codes.num_embeddings
        noise = torch.rand(n, points, 1, generator=generator).to(device or self.out.weight.device)
        ids = torch.arange(n, device=noise.device)
        return self(ids, noise)


GENERATORS = {"conditional_siren": ConditionalSiren}


def generator_extras(module: nn.Module) -> dict[str, torch.Tensor]:
    return {PREFIX + k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def build_from_artifact(info: dict[str, Any], extras: dict[str, torch.Tensor]) -> nn.Module:
    spec = info.get("generator")
    if not spec:
        raise ArtifactError("this synthetic set stores points, not a generator: it has a fixed resolution")
    if spec["type"] not in GENERATORS:
        raise ArtifactError(f"unknown generator type {spec['type']!r}; this ddbench knows {sorted(GENERATORS)}")
    module = GENERATORS[spec["type"]](**spec["config"])
    state = {k[len(PREFIX):]: v for k, v in extras.items() if k.startswith(PREFIX)}
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ArtifactError(f"the stored generator does not load: {' '.join(str(err).split())[:200]}") from None
    return module.eval()


def materialise(synth, points: int, seed: int | None = None):
    """A copy of a generator-backed synthetic set with clouds of ``points`` points (noise seed: stored or given)."""
    from ddbench.synthetic.artifact import SyntheticSet

    module = build_from_artifact(synth.info, synth.extras)
    noise_seed = synth.info["generator"]["noise_seed"] if seed is None else seed
    with torch.no_grad():
        clouds = module.sample(points, torch.Generator().manual_seed(noise_seed))
    info = {**synth.info, "generator": {**synth.info["generator"], "materialised_points": points}}
    return SyntheticSet(clouds, synth.labels, list(synth.class_names), dict(synth.extras), list(synth.stored), info)
