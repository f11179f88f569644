"""Mask generators and mask transforms: shapes, counts, padding band, determinism, errors, MONAI defects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.keys import Keys
from pipeline.physics import acs_start
from pipeline.seeds import stable_seed
from pipeline.transforms import FixedKspaceMask, FixedKspaceMaskd, RandKspaceMask, RandKspaceMaskd
from pipeline.transforms.masks import (
    MASK_TYPES,
    acs_range,
    equispaced_column_mask,
    gaussian_column_mask,
    generate_mask,
    random_column_mask,
    resolve_pe_range,
    weighted_choice,
)

SHAPES = [(33, 27), (64, 57), (40, 64)]
PE_RANGES = [None, "band"]
FAST_2D = ("gaussian2d", "radial", "spiral")


def _pe(shape, which):
    return None if which is None else (3, shape[1] - 4)


@pytest.mark.parametrize("mask_type", [t for t in MASK_TYPES if t != "poisson"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("which", PE_RANGES)
def test_generate_mask_contract(mask_type, shape, which):
    pe_range = _pe(shape, which)
    start, stop = resolve_pe_range(shape[1], pe_range)
    mask, n_acs = generate_mask(mask_type, shape, 0.1, 3, np.random.default_rng(1), pe_range)
    assert mask.shape == shape and mask.dtype == bool
    assert not mask[:, :start].any() and not mask[:, stop:].any()  # padding band never sampled
    assert n_acs == round((stop - start) * 0.1)
    first, _ = acs_range(shape[1], 0.1, pe_range)
    is_2d = mask_type not in ("random", "equispaced", "gaussian1d")
    center_row = (shape[0] - round(shape[0] * 0.1) + 1) // 2 if is_2d else 0
    assert mask[center_row, first : first + n_acs].all()  # ACS / centre block sampled
    fraction = mask[:, start:stop].mean()
    tolerance = 0.12 if mask_type == "random" else 0.04
    assert abs(fraction - 1 / 3) < tolerance


@pytest.mark.parametrize("width", [27, 64, 368])
@pytest.mark.parametrize(("cf", "acc"), [(0.08, 4), (0.04, 8), (0.02, 16), (0.25, 4)])
def test_column_masks_exact_acs_and_count(width, cf, acc):
    rng = np.random.default_rng(0)
    n_acs = int(round(width * cf))
    first = (width - n_acs + 1) // 2
    for fn in (random_column_mask, equispaced_column_mask, gaussian_column_mask):
        assert fn(width, cf, acc, rng)[first : first + n_acs].all()
    assert gaussian_column_mask(width, cf, acc, rng).sum() == max(round(width / acc), n_acs)
    assert abs(int(equispaced_column_mask(width, cf, acc, rng).sum()) - round(width / acc)) <= 2


def test_equispaced_is_regular_outside_acs():
    mask = equispaced_column_mask(368, 0.04, 8, np.random.default_rng(3))
    first, n_acs = acs_range(368, 0.04)
    columns = np.flatnonzero(mask)
    for side in (columns[columns < first - 1], columns[columns > first + n_acs]):
        gaps = np.diff(side)
        assert gaps.max() - gaps.min() <= 1


def test_center_fraction_equal_to_one_over_r_is_acs_only():
    mask = equispaced_column_mask(64, 0.25, 4, np.random.default_rng(0))
    assert mask.sum() == 16 and mask[24:40].all()


def test_poisson_mask_in_band_and_acceleration():
    mask, n_acs = generate_mask("poisson", (48, 41), 0.1, 4, np.random.default_rng(0), (2, 39))
    assert mask.shape == (48, 41) and not mask[:, :2].any() and not mask[:, 39:].any()
    assert abs(1 / mask[:, 2:39].mean() - 4) < 0.5
    assert n_acs == round(37 * 0.1)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"acceleration": 0.5}, "acceleration"),
        ({"center_fraction": 1.5}, "center_fraction"),
        ({"center_fraction": 0.5, "acceleration": 4}, "center_fraction"),
        ({"pe_range": (10, 5)}, "pe_range"),
        ({"mask_type": "zigzag"}, "mask_type"),
    ],
)
def test_generate_mask_errors_name_parameter(kwargs, parameter):
    args = {"mask_type": "random", "shape": (32, 40), "center_fraction": 0.08, "acceleration": 4, "pe_range": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=parameter):
        generate_mask(args["mask_type"], args["shape"], args["center_fraction"], args["acceleration"],
                      np.random.default_rng(0), args["pe_range"])


def test_acs_outside_acquired_band_raises():
    with pytest.raises(ValueError, match="pe_range"):
        acs_range(64, 0.25, (0, 30))


def test_weighted_choice_distinct_and_respects_zero_weights():
    weights = np.ones(100)
    weights[:50] = 0
    picks = weighted_choice(weights, 30, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 30 and (picks >= 50).all()
    with pytest.raises(ValueError):
        weighted_choice(weights, 51, np.random.default_rng(0))


def test_stable_seed_is_stable():
    assert stable_seed("file1000.h5:17") == 3351509901  # sha256-derived: identical on every machine
    assert stable_seed("file1000.h5:17") != stable_seed("file1000.h5:18")


@pytest.mark.parametrize("mask_type", ["equispaced", "random", "gaussian2d"])
def test_fixed_mask_deterministic_and_global_rng_untouched(mask_type):
    kspace = torch.zeros(2, 31, 45, 2)
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    masker = FixedKspaceMask(mask_type, [0.08, 0.04], [4, 8])
    a, n_a = masker(kspace, "file_a.h5:3")
    b, n_b = FixedKspaceMask(mask_type, [0.08, 0.04], [4, 8])(kspace, "file_a.h5:3")
    masks = [masker(kspace, f"file_a.h5:{s}")[0] for s in range(6)]
    assert torch.equal(a, b) and n_a == n_b
    assert any(not torch.equal(masks[0], m) for m in masks[1:])
    assert a.shape == (1, 31, 45, 1) and a.dtype == torch.bool
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and torch.equal(torch.get_rng_state(), torch_state)


def test_rand_mask_reproducible_and_fresh_per_call():
    kspace = torch.zeros(2, 30, 41, 2)
    t1 = RandKspaceMask("random", [0.08], [4])
    t1.set_random_state(7)
    t2 = RandKspaceMask("random", [0.08], [4])
    t2.set_random_state(7)
    draws1 = [t1(kspace)[0] for _ in range(3)]
    draws2 = [t2(kspace)[0] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(draws1, draws2))
    assert not torch.equal(draws1[0], draws1[1])
    assert torch.equal(t1(kspace, randomize=False)[0], draws1[-1])  # randomize=False reuses the last draw
    t3 = RandKspaceMask("random", [0.08], [4])
    t3.set_random_state(8)
    assert not torch.equal(t3(kspace)[0], draws2[0])


def test_rand_mask_transform_respects_pe_range_tensor():
    mask, n_acs = RandKspaceMask("equispaced", [0.1], [4])(torch.zeros(1, 16, 50, 2), torch.tensor([5, 45]))
    assert not mask[..., :5, :].any() and not mask[..., 45:, :].any() and n_acs == 4


def test_mask_spec_errors():
    with pytest.raises(ValueError, match="accelerations"):
        RandKspaceMask("random", [0.08], [0.5])
    with pytest.raises(ValueError, match="center_fractions"):
        RandKspaceMask("random", [0.3], [4])
    with pytest.raises(ValueError, match="equal length"):
        FixedKspaceMask("random", [0.08, 0.04], [4])


def _sample(h=24, w=37):
    return {
        Keys.KSPACE: torch.randn(3, h, w, 2),
        Keys.VOLUME: "vol.h5",
        Keys.SLICE: 5,
        Keys.PE_RANGE: torch.tensor([2, w - 2]),
    }


def test_mask_dict_twins_agree_with_arrays():
    d = _sample()
    out = FixedKspaceMaskd(mask_type="random", accelerations=[4])(d)
    ref, n_acs = FixedKspaceMask("random", [0.08], [4])(d[Keys.KSPACE], "vol.h5:5", d[Keys.PE_RANGE])
    assert torch.equal(out[Keys.MASK], ref) and out[Keys.NUM_LOW_FREQUENCIES] == n_acs
    rand_d = RandKspaceMaskd(mask_type="gaussian1d").set_random_state(3)
    rand_a = RandKspaceMask("gaussian1d")
    rand_a.set_random_state(3)
    assert torch.equal(rand_d(d)[Keys.MASK], rand_a(d[Keys.KSPACE], d[Keys.PE_RANGE])[0])


def test_fixed_mask_seed_is_the_volume_identity():
    """Same file name in two folders: two volumes, two masks; the same volume always gets the same mask."""
    masker = FixedKspaceMaskd(mask_type="random", accelerations=[4])
    knee, brain = ({**_sample(), Keys.VOLUME: f"{folder}/file1.h5"} for folder in ("knee", "brain"))
    assert not torch.equal(masker(knee)[Keys.MASK], masker(brain)[Keys.MASK])
    assert torch.equal(masker(knee)[Keys.MASK], masker(dict(knee))[Keys.MASK])


@pytest.mark.parametrize("twin", [lambda: RandKspaceMaskd(), lambda: FixedKspaceMaskd()])
def test_existing_mask_wins_unless_overwrite(twin):
    d = _sample()
    own = torch.zeros(1, 24, 37, 1, dtype=torch.bool)
    d[Keys.MASK] = own
    d[Keys.NUM_LOW_FREQUENCIES] = 0
    out = twin()(d)
    assert out[Keys.MASK] is own and out[Keys.NUM_LOW_FREQUENCIES] == 0
    transform = twin()
    transform.overwrite = True
    assert transform(d)[Keys.MASK].any()


def test_missing_kspace_allowed():
    out = RandKspaceMaskd(allow_missing_keys=True)({Keys.FILENAME: "x"})
    assert Keys.MASK not in out
    with pytest.raises(KeyError):
        RandKspaceMaskd()({Keys.FILENAME: "x"})


class TestMonaiDefects:
    """Why MONAI's k-space mask transforms are replaced: these assert the defects exist in MONAI 1.6.1."""

    def test_equispaced_mask_changes_between_calls(self):
        from monai.apps.reconstruction.transforms.array import EquispacedKspaceMask

        transform = EquispacedKspaceMask([0.08], [4])
        transform.set_random_state(0)
        kspace = torch.ones(4, 32, 64, 2)
        masks = []
        for _ in range(4):
            transform(kspace)
            masks.append(transform.mask.clone())
        assert any(not torch.equal(masks[0], m) for m in masks[1:])  # a "validation" mask that moves
        assert masks[0].dtype == torch.float32  # float, not bool

    def test_equispaced_center_fraction_one_over_r_divides_by_zero(self):
        from monai.apps.reconstruction.transforms.array import EquispacedKspaceMask

        with pytest.raises(ZeroDivisionError):
            EquispacedKspaceMask([0.25], [4])(torch.ones(2, 16, 64, 2))
        ours, n_acs = FixedKspaceMask("equispaced", [0.25], [4])(torch.ones(2, 16, 64, 2), "f:0")
        assert n_acs == 16 and ours[0, 0, :, 0].sum() == 16

    def test_equispaced_r1_drops_a_column(self):
        from monai.apps.reconstruction.transforms.array import EquispacedKspaceMask

        transform = EquispacedKspaceMask([0.0], [1])
        transform.set_random_state(0)
        transform(torch.ones(2, 16, 64, 2))
        assert transform.mask.sum() == 63  # "fully sampled" misses one column
        assert tuple(transform.mask.shape) == (1, 1, 64, 1)  # 1-D column masks only
        ours, _ = FixedKspaceMask("equispaced", [0.0], [1])(torch.ones(2, 16, 64, 2), "f:0")
        assert ours.all()


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_masks_stay_centred_on_the_kspace_centre_for_an_asymmetric_band(mask_type):
    """Partial Fourier: acquired columns [4, 52) of W = 80, whose k-space centre 40 is not the band's (28)."""
    h, w, band, centre = 32, 80, (4, 52), 40
    draws = 8 if mask_type == "poisson" else 60
    density = np.zeros(w)
    for seed in range(draws):
        mask, n_acs = generate_mask(mask_type, (h, w), 0.08, 4, np.random.default_rng(seed), band)
        assert not mask[:, : band[0]].any() and not mask[:, band[1] :].any()  # never outside the band
        first = acs_start(w, n_acs)
        assert mask[h // 2, first : first + n_acs].all() and first <= centre < first + n_acs  # centred ACS
        density += mask.mean(axis=0)
    offsets = np.arange(n_acs, min(centre - band[0], band[1] - 1 - centre) + 1)  # mirrored inside the band
    left, right = density[centre - offsets].sum(), density[centre + offsets].sum()
    assert abs(left - right) / (left + right) < 0.1, (left, right)
