"""A synthetic set at another resolution (``ddbench eval --points N``)."""

from __future__ import annotations

from ddbench.data.transforms import fps_subsample
from ddbench.errors import ConfigError
from ddbench.synthetic.artifact import SyntheticSet
from ddbench.synthetic.generators import materialise


def at_resolution(synth: SyntheticSet, points: int) -> SyntheticSet:
    """The synthetic set at ``points`` points per cloud: sampled from its generator, or reduced by FPS."""
    if "generator" in synth.info:
        return materialise(synth, points)
    have = synth.points.shape[1]
    if points > have:
        raise ConfigError(
            f"this artifact stores clouds of {have} points and no generator; it can be evaluated at {have} or fewer"
        )
    return SyntheticSet(fps_subsample(synth.points, points), synth.labels, list(synth.class_names),
                        dict(synth.extras), list(synth.stored), dict(synth.info))
