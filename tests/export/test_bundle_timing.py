"""Every timing of a bundle's subnet (the export's figure, the finalists, the cross-device table) goes
through `Exporter.source`, so a target that times torch modules (torch-cuda) gets modules: no GPU needed."""

import random
from types import SimpleNamespace

from export.exporter import Exporter
from hwofa.finalists import measure_round
from profiler import Timing
from profiler.backends.base import ModuleSource


def test_bundle_timings_hand_a_module_target_modules(tiny_run, monkeypatch):
    """torch-cuda times modules: the export's figure and the finalists (and the cross-device table,
    through the same Exporter.source) give it a ModuleSource at the profile's batch, never bare ONNX
    bytes (which a lent H100 refused in `hwofa run`)."""
    ex = Exporter("cpu-onnxruntime", tiny_run)
    seen: list[tuple[int, ...]] = []

    def cost_many(models, rng, **_):
        for key, src in models.items():
            assert isinstance(src, ModuleSource), f"{key}: {type(src).__name__}"
            seen.append(src.input_shape)
        return {k: Timing(1.0, 1.0, 1, 0.0) for k in models}

    monkeypatch.setattr(ex.target, "wants_module", True)
    monkeypatch.setattr(ex.target, "cost_many", cost_many)
    space = ex.net.space
    small, large = space.smallest(), space.largest()
    assert ex.measure(ex.candidate(small, calibrate=False)).p50_ms == 1.0
    got = measure_round(ex, [SimpleNamespace(arch=small), SimpleNamespace(arch=large)], 0, random.Random(0))
    assert [f.point.arch for f in got] == [small, large]
    batch = ex.profile.batch_size
    assert seen == [(batch, space.in_channels, a.resolution, a.resolution) for a in (small, small, large)]
