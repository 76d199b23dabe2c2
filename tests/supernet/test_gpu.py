"""Training on a CUDA GPU (`hwofa train --torch-device cuda`): checked on a lent GPU machine, skipped here."""

import pytest
import torch

from supernet import load_recipe, load_supernet
from supernet.train import Trainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")]


def test_cuda_training_checkpoint_loads_and_resumes_on_cpu(tmp_path, fmnist, tiny_recipe_path):
    recipe = load_recipe(tiny_recipe_path)
    Trainer(recipe, fmnist, tmp_path / "gpu", device="cuda").fit()
    net, meta = load_supernet(tmp_path / "gpu")  # weights written from the GPU, read on the CPU
    assert set(meta.metrics["test_top1"]) == {"smallest", "middle", "largest"}
    arch = net.space.largest()
    net.set_arch(arch)
    x = torch.randn(4, 1, arch.resolution, arch.resolution)
    with torch.no_grad():
        cpu_out = net.eval()(x)
        gpu_out = net.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(cpu_out, gpu_out, rtol=1e-3, atol=1e-4)
    # a GPU run resumes on the CPU: it finishes at once and recomputes the same final metrics there
    final = Trainer(recipe, fmnist, tmp_path / "gpu").fit(resume=True)
    for name, m in final["test_top1"].items():
        assert abs(m["test_top1"] - meta.metrics["test_top1"][name]["test_top1"]) <= 0.01


def test_amp_bf16_training_on_cuda(tmp_path, fmnist, tiny_recipe_path):
    """`--amp`: bf16 autocast; the weights stay float32 and finite, the run loads on the CPU."""
    Trainer(load_recipe(tiny_recipe_path), fmnist, tmp_path / "amp", device="cuda", amp=True).fit()
    net, meta = load_supernet(tmp_path / "amp")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())
    assert all(0.0 <= m["test_top1"] <= 1.0 for m in meta.metrics["test_top1"].values())
