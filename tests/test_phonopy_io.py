"""phonopy-format writers: what we write, phonopy's own parser reads back."""

import numpy as np

from mlffbench import phonopy_io as pio


def test_force_constants_round_trip_through_phonopy_parser(tmp_path):
    from phonopy.file_IO import parse_FORCE_CONSTANTS

    rng = np.random.default_rng(0)
    for shape, rows in (((1, 32, 3, 3), None), ((4, 4, 3, 3), None), ((2, 8, 3, 3), np.array([0, 4]))):
        fc = rng.normal(scale=3.0, size=shape)
        path = tmp_path / "FORCE_CONSTANTS"
        pio.write_force_constants(path, fc, row_atoms=rows)
        back = parse_FORCE_CONSTANTS(str(path))
        assert back.shape == shape
        np.testing.assert_allclose(back, fc, rtol=0, atol=1e-14)  # 15 decimals written
