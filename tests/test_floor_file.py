"""A model with every public layer, saved as `.keras` on the floor Keras (3.10), loads here with equal
outputs, and its noise streams continue where they were saved (see tests/floor_file.py).

The committed file is checked on every run; CI also sets `KAA_FLOOR_FILE` to a folder it has just
written on Keras 3.10, and that one is checked too.
"""

import json
import os
from pathlib import Path

import floor_file
import keras
import pytest
from keras_bugs import NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE

COMMITTED = Path(__file__).resolve().parent / "data" / "every_layer_keras_3_10"
FOLDERS = [COMMITTED] + ([Path(os.environ["KAA_FLOOR_FILE"])] if os.environ.get("KAA_FLOOR_FILE") else [])
IDS = ["committed"] + (["fresh"] if len(FOLDERS) > 1 else [])


def test_the_committed_file_was_written_on_the_floor_keras():
    written = json.loads((COMMITTED / "versions.json").read_text())
    assert written["keras"] == "3.10.0" and written["backend"] == "tensorflow"


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_a_file_saved_on_the_floor_keras_loads_with_equal_outputs(folder):
    problems = floor_file.check(folder)
    assert "inference" not in problems, f"on Keras {keras.__version__}: {problems['inference']}"


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
@NIGHTLY_KEEPS_RECORDED_TRAINING_FALSE
def test_its_noise_streams_continue_where_they_were_saved(folder):
    written = json.loads((folder / "versions.json").read_text())
    if written["backend"] != keras.backend.backend():
        pytest.skip(f"the draws repeat only on the backend that wrote the file ({written['backend']})")
    problems = floor_file.check(folder)
    assert "noise" not in problems, f"on Keras {keras.__version__}: {problems['noise']}"
