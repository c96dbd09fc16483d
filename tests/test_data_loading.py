"""Images and tables are checked against the model; every problem a user can cause gets a clear XaiError."""

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xai_core import XaiError
from xai_core.data_loading import MAX_IMAGE_PIXELS, decode_image, load_images, prepare_table, read_table
from xai_core.model import ModelInfo

IMAGE_MODEL = ModelInfo(input_kind="image", input_shape=(3, 32, 32), class_names=("cat", "dog"))
GREY_MODEL = ModelInfo(input_kind="image", input_shape=(1, 32, 32), class_names=tuple("0123456789"), mean=(0.5,), std=(0.5,))
TABLE_MODEL = ModelInfo(input_kind="tabular", input_shape=(3,), feature_names=("a", "b", "c"),
                        class_names=("no", "yes"), target_name="target")


def png(size=(32, 32), mode="RGB", color=(200, 30, 30), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def zipped(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_loose_images_are_resized_and_unlabelled():
    data = load_images([("a.png", png((64, 64))), ("b.jpg", png((32, 32), fmt="JPEG")), ("c.webp", png(fmt="WEBP"))], IMAGE_MODEL)
    assert data.images.shape == (3, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels is None
    assert any("resized" in n for n in data.notes)


def test_zip_class_folders_become_labels_under_a_top_folder():
    archive = zipped({"test/cat/1.png": png(), "test/dog/2.png": png(), "test/dog/3.png": png(), "__MACOSX/x.png": b""})
    data = load_images([("set.zip", archive)], IMAGE_MODEL)
    assert data.labels.tolist() == [0, 1, 1]


def test_zip_folders_may_be_class_indices():
    data = load_images([("d.zip", zipped({"3/a.png": png(mode="L", color=9), "7/b.png": png(mode="L", color=9)}))], GREY_MODEL)
    assert data.labels.tolist() == [3, 7] and data.images.shape == (2, 32, 32, 1)


def test_zip_with_unknown_folders_names_them():
    with pytest.raises(XaiError, match=r"\['horse'\].*cat, dog"):
        load_images([("z.zip", zipped({"cat/1.png": png(), "horse/2.png": png()}))], IMAGE_MODEL)


def test_zip_path_traversal_is_refused():
    with pytest.raises(XaiError, match="unsafe paths"):
        load_images([("z.zip", zipped({"../../etc/cat.png": png()}))], IMAGE_MODEL)


def test_zip_bomb_is_refused():
    with pytest.raises(XaiError, match="zip bomb|unpacks to"):
        load_images([("bomb.zip", zipped({"cat/big.png": b"\x00" * (60 * 1024**2)}))], IMAGE_MODEL)


def test_decompression_bomb_image_is_refused_before_decoding():
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    big = png((side, side), mode="1", color=0)  # a 1-bit PNG: tiny file, huge declared size
    with pytest.raises(XaiError, match="megapixels|decompression bomb"):
        decode_image(big, "big.png", IMAGE_MODEL)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"just some text", "not an image"),
    (png()[:60], "damaged or truncated|not an image"),
])
def test_broken_images(data, message):
    with pytest.raises(XaiError, match=message):
        decode_image(data, "x.png", IMAGE_MODEL)


def test_unsupported_image_format():
    with pytest.raises(XaiError, match="BMP image"):
        decode_image(png(fmt="BMP"), "x.bmp", IMAGE_MODEL)


@pytest.mark.parametrize("mode, color, fmt", [("RGBA", (10, 20, 30, 0), "PNG"), ("L", 128, "PNG"), ("CMYK", (0, 255, 0, 0), "JPEG"),
                                             ("I;16", 40000, "PNG"), ("P", 3, "PNG")])
def test_image_modes_are_converted(mode, color, fmt):
    image = decode_image(png(mode=mode, color=color, fmt=fmt), "x.png", IMAGE_MODEL)
    assert image.shape == (32, 32, 3)


def test_transparent_pixels_become_white():
    image = decode_image(png(mode="RGBA", color=(10, 20, 30, 0)), "x.png", IMAGE_MODEL)
    assert (image == 255).all()


def test_images_for_a_tabular_model_are_refused():
    with pytest.raises(XaiError, match="takes a table"):
        load_images([("a.png", png())], TABLE_MODEL)


def csv_bytes(text: str) -> bytes:
    return text.encode()


def test_table_by_name_in_any_order_with_target():
    frame = read_table(csv_bytes("c,target,a,b\n3,yes,1,2\n6,no,4,5\n"), "t.csv")
    table = prepare_table(frame, TABLE_MODEL)
    assert list(table.X.columns) == ["a", "b", "c"] and table.X.iloc[1].tolist() == [4, 5, 6]
    assert table.y.tolist() == [1, 0]
    assert any("reordered" in n for n in table.notes)


def test_semicolon_csv_is_sniffed():
    table = prepare_table(read_table(csv_bytes("a;b;c\n1;2;3\n"), "t.csv"), TABLE_MODEL)
    assert table.X.shape == (1, 3)


def test_positional_columns_when_no_names_match():
    table = prepare_table(read_table(csv_bytes("p,q,r\n1,2,3\n"), "t.csv"), TABLE_MODEL)
    assert list(table.X.columns) == ["a", "b", "c"]
    assert any("in order" in n for n in table.notes)


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n", r"needs 3 features.*Missing: \['c'\]"),
    ("a,b,c\n1,x,3\n2,y,4\n", r"'b' has non-numeric values \['x', 'y'\] \(rows \[1, 2\]\)"),
    ("a,b,c\n1,,3\n", r"missing \(NaN\) or infinite values: {.b.: 1} \(rows \[1\]"),
    ("a,b,c\n1,inf,3\n", r"or infinite values: {.b.: 1}"),
    ("a|b|c\n1|2|3\n", None),
    ("a,a,b,c\n1,2,3,4\n", "duplicate column names"),
    ("a,b,c\n1,2,3,4,5\n", "line 2 has 5 fields but the header has 3"),
    ("a,b,c\n", "no rows"),
    ("", "empty"),
])
def test_table_problems(text, message):
    if message is None:  # pipe-delimited: sniffed, fine
        assert prepare_table(read_table(csv_bytes(text), "t.csv"), TABLE_MODEL).X.shape == (1, 3)
        return
    with pytest.raises(XaiError, match=message):
        prepare_table(read_table(csv_bytes(text), "t.csv"), TABLE_MODEL)


def test_wrong_delimiter_gets_a_hint():
    with pytest.raises(XaiError, match="single column: is the delimiter right"):
        prepare_table(pd.DataFrame({"a b c": ["1 2 3"]}), TABLE_MODEL)


def test_unknown_target_labels():
    with pytest.raises(XaiError, match=r"\['maybe'\] are neither classes"):
        prepare_table(read_table(csv_bytes("a,b,c,target\n1,2,3,maybe\n"), "t.csv"), TABLE_MODEL)


def test_parquet_round_trip_and_fake_parquet():
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]}).to_parquet(buffer)
    assert prepare_table(read_table(buffer.getvalue(), "t.parquet"), TABLE_MODEL).X.shape == (1, 3)
    with pytest.raises(XaiError, match="Parquet"):
        read_table(b"a,b,c\n1,2,3\n", "t.parquet")


def test_table_for_an_image_model_is_refused():
    with pytest.raises(XaiError, match="takes images"):
        prepare_table(pd.DataFrame({"a": [1]}), IMAGE_MODEL)


def test_load_data_dispatches_by_file_type():
    from xai_core.data_loading import load_data

    assert load_data([("t.csv", b"a,b,c\n1,2,3\n")], TABLE_MODEL).X.shape == (1, 3)
    assert load_data([("a.png", png())], IMAGE_MODEL).images.shape == (1, 32, 32, 3)
    with pytest.raises(XaiError, match="not both"):
        load_data([("t.csv", b"a,b,c\n1,2,3\n"), ("a.png", png())], TABLE_MODEL)
    with pytest.raises(XaiError, match="one table, not 2"):
        load_data([("t.csv", b"a,b,c\n1,2,3\n"), ("u.csv", b"a,b,c\n1,2,3\n")], TABLE_MODEL)
