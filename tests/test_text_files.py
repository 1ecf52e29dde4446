"""Text files users write that are not UTF-8: one error naming the file, the position, the fix."""

from __future__ import annotations

import pytest

from babelseg.cli.predict_cmd import read_labels_file
from babelseg.data.declaration import load_declarations
from babelseg.engine.config import load_config
from babelseg.labels.space import LabelSpace
from babelseg.labels.text_files import read_text_file

LATIN1 = "classes:\n  - name: caf\xe9\n  - name: road\n".encode("latin-1")


def test_a_latin1_label_space_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_bytes(LATIN1)
    with pytest.raises(ValueError, match=rf"Label space {path} is not UTF-8 text .*0xe9 at line 2"):
        LabelSpace.from_yaml(path)


@pytest.mark.parametrize(
    "load, what",
    [(load_config, "Config"), (load_declarations, "Dataset declarations")],
)
def test_configs_and_declarations_too(tmp_path, load, what):
    path = tmp_path / "file.yaml"
    path.write_bytes(LATIN1)
    with pytest.raises(ValueError, match=rf"{what} {path} is not UTF-8"):
        load(path)


def test_predict_labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("road\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"Labels file {path} is not UTF-8"):
        read_labels_file(path)


def test_utf8_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffroad\n".encode())
    assert read_text_file(path) == "road\n"
