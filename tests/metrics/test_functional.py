"""fastMRI metric functions against scikit-image (the library fastMRI's evaluate.py calls)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.metrics import nmse, psnr, ssim, ssim_slices, volume_metrics


def fastmri_reference(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> dict[str, float]:
    """fastMRI evaluate.py's three functions, restated on top of scikit-image."""
    maxval = gt.max() if maxval is None else maxval
    return {
        "nmse": float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2),
        "psnr": float(peak_signal_noise_ratio(gt, pred, data_range=maxval)),
        "ssim": float(np.mean([structural_similarity(g, p, data_range=maxval, win_size=7) for g, p in zip(gt, pred)])),
    }


@pytest.mark.parametrize(("slices", "h", "w"), [(3, 64, 64), (2, 47, 53), (1, 320, 320)])
@pytest.mark.parametrize("given_max", [False, True])
def test_matches_fastmri_and_skimage(make_volume, slices, h, w, given_max):
    gt, pred = make_volume(slices, h, w, seed=h)
    maxval = float(gt.max()) * 1.1 if given_max else None
    ref = fastmri_reference(gt, pred, maxval)
    ours = volume_metrics(gt, pred, maxval)
    torch_ours = volume_metrics(torch.from_numpy(gt), torch.from_numpy(pred), maxval)
    for key in ("nmse", "ssim"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-4, rel=1e-4)
        assert torch_ours[key] == pytest.approx(ours[key], abs=1e-10)
    assert ours["psnr"] == pytest.approx(ref["psnr"], abs=1e-4)
    assert 0 < ours["ssim"] < 1


def test_identical_volumes(make_volume):
    gt, _ = make_volume(2, 32, 32)
    assert nmse(gt, gt) == 0 and psnr(gt, gt) == float("inf") and ssim(gt, gt) == pytest.approx(1.0)


def test_ssim_slices_shape_and_errors(make_volume):
    gt, pred = make_volume(3, 32, 30)
    assert ssim_slices(gt, pred, float(gt.max())).shape == (3,)
    with pytest.raises(ValueError, match="slices"):
        ssim(gt[0], pred[0])
    with pytest.raises(ValueError, match="same shape"):
        nmse(gt, pred[:2])
    with pytest.raises(ValueError, match="maxval"):
        psnr(gt, pred, maxval=0.0)


def test_monai_ssim_metric_uses_population_covariance(make_volume):
    """MONAI's SSIMMetric omits skimage's N/(N-1) sample-covariance factor: not fastMRI's SSIM on noisy images."""
    from monai.metrics import SSIMMetric

    gt, pred = make_volume(2, 64, 64)
    maxval = float(gt.max())
    metric = SSIMMetric(spatial_dims=2, data_range=maxval, kernel_type="uniform", win_size=7)
    monai_value = float(metric(torch.from_numpy(pred)[:, None], torch.from_numpy(gt)[:, None]).mean())
    population = np.mean(
        [structural_similarity(g, p, data_range=maxval, use_sample_covariance=False) for g, p in zip(gt, pred)]
    )
    assert monai_value == pytest.approx(population, abs=1e-5)
    assert abs(monai_value - ssim(gt, pred)) > 1e-4  # so use pipeline.metrics.ssim for fastMRI numbers
