"""Crash-safe writes: a file appears complete or not at all, and no temporary file is left behind."""

import numpy as np
import pytest

from synthscan.atomic import atomic_memmap, atomic_open, atomic_write_text


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as handle:
        handle.write("new")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), atomic_memmap(tmp_path / "b.npy", np.float32, (4, 3)) as array:
        array[0] = 1
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_memmap_appears_complete(tmp_path):
    path = tmp_path / "sub" / "x.npy"
    with atomic_memmap(path, np.float16, (3, 2)) as array:
        array[:] = np.arange(6).reshape(3, 2)
        assert not path.exists()
    assert np.array_equal(np.load(path), np.arange(6).reshape(3, 2).astype(np.float16))
    assert [p.name for p in path.parent.iterdir()] == ["x.npy"]
