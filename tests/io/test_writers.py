import h5py
import nibabel as nib
import numpy as np
import torch
from ignite.engine import Engine

from pipeline.io import VolumeWriter, write_volume
from pipeline.keys import Keys


def test_write_volume_formats(tmp_path):
    vol = np.random.default_rng(0).random((3, 16, 12)).astype(np.float64)
    paths = write_volume(vol, tmp_path, "vol")
    with h5py.File(paths["h5"]) as f:
        rec = f["reconstruction"]
        assert rec.dtype == np.float32 and rec.shape == (3, 16, 12)
        np.testing.assert_allclose(rec[()], vol.astype(np.float32))
    img = nib.load(paths["nifti"])
    assert img.shape == (12, 16, 3)
    np.testing.assert_allclose(np.asarray(img.dataobj)[:, ::-1].transpose(2, 1, 0), vol.astype(np.float32))
    assert paths["png"].stat().st_size > 1000


def test_volume_writer_assembles_slices_out_of_order(tmp_path):
    order = [("a.h5", 1), ("b.h5", 0), ("a.h5", 0)]
    truth = {("a.h5", 0): 1.0, ("a.h5", 1): 2.0, ("b.h5", 0): 3.0}

    def step(engine, item):
        name, s = item
        return {
            Keys.PRED: torch.full((1, 1, 4, 4), truth[(name, s)]),
            Keys.VOLUME: [name],
            Keys.SLICE: torch.tensor([s]),
            Keys.NUM_SLICES: torch.tensor([2 if name == "a.h5" else 1]),
        }

    engine = Engine(step)
    writer = VolumeWriter(tmp_path)
    writer.attach(engine)
    engine.run(order, max_epochs=1)
    assert set(writer.written) == {"a", "b"}
    with h5py.File(tmp_path / "a.h5") as f:
        np.testing.assert_array_equal(f["reconstruction"][:, 0, 0], [1.0, 2.0])


def test_same_file_name_in_two_folders_gives_two_outputs(tmp_path):
    """Volumes are keyed by their path relative to the data root; outputs keep the folders."""
    items = [("knee/file1.h5", 0, 1.0), ("brain/file1.h5", 0, 5.0)]

    def step(engine, item):
        volume, s, value = item
        return {
            Keys.PRED: torch.full((1, 1, 4, 4), value),
            Keys.VOLUME: [volume],
            Keys.FILENAME: ["file1.h5"],
            Keys.SLICE: torch.tensor([s]),
            Keys.NUM_SLICES: torch.tensor([1]),
        }

    engine = Engine(step)
    writer = VolumeWriter(tmp_path)
    writer.attach(engine)
    engine.run(items, max_epochs=1)
    assert set(writer.written) == {"knee/file1", "brain/file1"}
    for folder, value in (("knee", 1.0), ("brain", 5.0)):
        with h5py.File(tmp_path / folder / "file1.h5") as f:
            assert f["reconstruction"][0, 0, 0] == value
        assert (tmp_path / folder / "file1.nii.gz").is_file() and (tmp_path / folder / "file1.png").is_file()
