"""Images and tables are checked against the model; every problem a user can cause gets a clear XaiError."""

import io
import random
import struct
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xai_core import XaiError
from xai_core import data_loading
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
    assert data.names == ["a.png", "b.jpg", "c.webp"]
    assert data.labels is None
    assert (data.images[0] == (200, 30, 30)).all()  # a flat colour stays that colour when resized
    assert np.abs(data.images[1:].astype(int) - (200, 30, 30)).max() <= 3  # lossy formats: close
    assert len(data.notes) == 1 and "resized to the model's input size 32×32" in data.notes[0]


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
    with pytest.raises(XaiError, match=r"looks like a zip bomb \(cat/big.png expands \d+×\)"):
        load_images([("bomb.zip", zipped({"cat/big.png": b"\x00" * (60 * 1024**2)}))], IMAGE_MODEL)


def test_decompression_bomb_image_is_refused_before_decoding():
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    big = png((side, side), mode="1", color=0)  # a 1-bit PNG: tiny file, huge declared size
    with pytest.raises(XaiError, match=rf"is {side}×{side} pixels, over the limit of 40 megapixels"):
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


@pytest.mark.parametrize("mode, color, fmt, rgb", [
    ("RGBA", (10, 20, 30, 255), "PNG", (10, 20, 30)),
    ("L", 128, "PNG", (128, 128, 128)),
    ("CMYK", (0, 255, 0, 0), "JPEG", (255, 0, 255)),  # no cyan, full magenta → red + blue
    ("P", 3, "PNG", None),  # palette entry 3, whatever colour PIL's default palette gives it
])
def test_image_modes_are_converted(mode, color, fmt, rgb):
    data = png(mode=mode, color=color, fmt=fmt)
    image = decode_image(data, "x.png", IMAGE_MODEL)
    assert image.shape == (32, 32, 3)
    expected = rgb if rgb is not None else Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))
    assert np.abs(image.astype(int) - expected).max() <= (8 if fmt == "JPEG" else 0)


def test_sixteen_bit_images_are_rescaled_from_their_range():
    ramp = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 40 + 1000  # 1000 … 41920
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    notes = []
    image = decode_image(buffer.getvalue(), "deep.png", GREY_MODEL, notes)
    expected = np.round((ramp - 1000) / (ramp.max() - 1000) * 255)
    assert np.abs(image[..., 0].astype(int) - expected).max() <= 1
    assert image.min() == 0 and image.max() == 255
    assert notes == ["16-bit or float images were rescaled to 8 bits."]


def test_colour_to_grey_and_grey_to_colour():
    notes = []
    grey = decode_image(png(color=(255, 0, 0)), "red.png", GREY_MODEL, notes)
    assert grey.shape == (32, 32, 1) and (grey == 76).all()  # ITU-R 601 luma of pure red: 0.299 · 255
    colour = decode_image(png(mode="L", color=77), "g.png", IMAGE_MODEL, notes)
    assert (colour == 77).all() and colour.shape == (32, 32, 3)
    assert notes == ["Colour images were converted to greyscale for this model.",
                     "Greyscale images were converted to RGB for this model."]


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
    table = prepare_table(read_table(csv_bytes("a;b;c\n1;2;3\n4.5;5;6\n"), "t.csv"), TABLE_MODEL)
    assert table.X.to_numpy().tolist() == [[1, 2, 3], [4.5, 5, 6]]


def test_positional_columns_when_no_names_match():
    table = prepare_table(read_table(csv_bytes("p,q,r\n1,2,3\n"), "t.csv"), TABLE_MODEL)
    assert list(table.X.columns) == ["a", "b", "c"] and table.X.iloc[0].tolist() == [1, 2, 3]
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


# ---------------------------------------------------------------------------------------- zip labels

ANIMALS = ("zebra", "ant", "mole", "bee", "cat")  # deliberately not in sorted order


def shaded(value: int, mode="RGB") -> bytes:
    """A flat image whose grey level encodes which file it is."""
    return png(mode=mode, color=(value, value, value) if mode == "RGB" else value)


def class_zip(folder_of, n_per_class=(3, 1, 4, 2, 5), top=None, seed=0, mode="RGB"):
    """A zip with images of class i in folder `folder_of(i)`, written in shuffled order; returns (bytes, {name: class})."""
    files = [(i, j) for i, n in enumerate(n_per_class) for j in range(n)]
    random.Random(seed).shuffle(files)
    members, truth = {}, {}
    for i, j in files:
        name = f"{folder_of(i)}/img_{i}_{j}.png"
        if top:
            name = f"{top(i, j) if callable(top) else top}/{name}"
        members[name] = shaded(10 * i + j + 1, mode)  # grey level → (class, number), so images stay paired with names
        truth[name] = i
    return zipped(members), truth


def class_from_file_name(name: str) -> int:
    return int(name.rsplit("/", 1)[-1].split("_")[1])


def two_parts(i, j):
    return f"data/part{(i + j) % 2}"  # one wrapping folder, then two folders that each hold class folders


@pytest.mark.parametrize("folders", ["names", "indices"])
@pytest.mark.parametrize("top", [None, "test", two_parts], ids=["flat", "one-top-folder", "two-part-folders"])
def test_every_zip_image_gets_its_folders_class(folders, top):
    model = ModelInfo(input_kind="image", input_shape=(3, 32, 32), class_names=ANIMALS)
    folder_of = (lambda i: ANIMALS[i]) if folders == "names" else str
    archive, truth = class_zip(folder_of, top=top)
    data = load_images([("set.zip", archive)], model)
    assert sorted(data.names) == sorted(truth)
    expected = [class_from_file_name(name) for name in data.names]  # from the file names written, not the loader
    assert data.labels.tolist() == expected
    assert data.labels.tolist() == [truth[name] for name in data.names]
    assert np.bincount(data.labels, minlength=5).tolist() == [3, 1, 4, 2, 5]
    for image, name, label in zip(data.images, data.names, data.labels):  # each image sits with its own name and label
        j = int(name.rsplit("_", 1)[-1].split(".")[0])
        assert (image == 10 * label + j + 1).all(), name


def test_zip_folders_named_by_index_on_a_model_with_ten_classes():
    archive, truth = class_zip(str, n_per_class=(1,) * 10, seed=3, mode="L")
    data = load_images([("d.zip", archive)], GREY_MODEL)
    assert data.labels.tolist() == [truth[name] for name in data.names]
    assert sorted(data.labels.tolist()) == list(range(10))


def test_zip_folders_named_like_numbers_are_read_as_names_when_they_are_names():
    model = ModelInfo(input_kind="image", input_shape=(3, 32, 32), class_names=("1", "2", "3"))
    archive = zipped({"3/a.png": shaded(1), "1/b.png": shaded(2), "2/c.png": shaded(3)})
    data = load_images([("z.zip", archive)], model)
    assert dict(zip(data.names, data.labels.tolist())) == {"3/a.png": 2, "1/b.png": 0, "2/c.png": 1}


def test_a_zip_holding_a_single_class_folder_is_labelled():
    data = load_images([("z.zip", zipped({"dog/a.png": png(), "dog/b.png": png()}))], IMAGE_MODEL)
    assert data.labels.tolist() == [1, 1]
    data = load_images([("z.zip", zipped({"test/dog/a.png": png(), "test/dog/b.png": png()}))], IMAGE_MODEL)
    assert data.labels.tolist() == [1, 1]


def test_a_zip_with_loose_images_next_to_class_folders_is_unlabelled():
    data = load_images([("z.zip", zipped({"dog/a.png": png(), "b.png": png()}))], IMAGE_MODEL)
    assert data.labels is None and any("not in a class folder" in n for n in data.notes)


def test_zip_folder_equal_to_the_number_of_classes_is_refused():
    with pytest.raises(XaiError, match=r"Folder name\(s\) \['2'\] are neither classes .* indices 0…1"):
        load_images([("z.zip", zipped({"0/a.png": png(), "2/b.png": png()}))], IMAGE_MODEL)
    assert load_images([("z.zip", zipped({"0/a.png": png(), "1/b.png": png()}))], IMAGE_MODEL).labels.tolist() == [0, 1]


# ---------------------------------------------------------------------------------------- limits, at and one past


def png_header(width: int, height: int) -> bytes:
    """A 1-bit PNG that declares width × height but holds almost no pixel data (so decoding it fails)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_pixel_limit_is_read_from_the_header_at_the_real_limit():
    assert MAX_IMAGE_PIXELS == 8000 * 5000
    with pytest.raises(XaiError, match="40000001×1 pixels, over the limit"):
        decode_image(png_header(MAX_IMAGE_PIXELS + 1, 1), "x.png", GREY_MODEL)
    # Exactly at the limit the header passes; decoding then fails only because this file holds no pixels.
    with pytest.raises(XaiError, match="damaged or truncated"):
        decode_image(png_header(8000, 5000), "x.png", GREY_MODEL)


def test_pixel_limit_at_and_one_past(monkeypatch):
    monkeypatch.setattr(data_loading, "MAX_IMAGE_PIXELS", 32 * 32)
    assert decode_image(png((32, 32)), "ok.png", IMAGE_MODEL).shape == (32, 32, 3)
    assert decode_image(png((16, 64)), "ok.png", IMAGE_MODEL).shape == (32, 32, 3)
    with pytest.raises(XaiError, match="'big.png' is 33×32 pixels, over the limit"):
        decode_image(png((33, 32)), "big.png", IMAGE_MODEL)


def test_image_count_limit_at_and_one_past(monkeypatch):
    monkeypatch.setattr(data_loading, "MAX_IMAGES", 3)
    assert len(load_images([(f"{i}.png", png()) for i in range(3)], IMAGE_MODEL)) == 3
    with pytest.raises(XaiError, match="More than 3 images"):
        load_images([(f"{i}.png", png()) for i in range(4)], IMAGE_MODEL)
    three = zipped({f"cat/{i}.png": png() for i in range(3)})
    assert len(load_images([("z.zip", three)], IMAGE_MODEL)) == 3
    with pytest.raises(XaiError, match="'z.zip' holds 4 images; the limit is 3"):
        load_images([("z.zip", zipped({f"cat/{i}.png": png() for i in range(4)}))], IMAGE_MODEL)
    with pytest.raises(XaiError, match="More than 3 images"):  # two zips together
        load_images([("a.zip", zipped({"cat/1.png": png(), "cat/2.png": png()})),
                     ("b.zip", zipped({"dog/1.png": png(), "dog/2.png": png()}))], IMAGE_MODEL)


def test_zip_ratio_limit_applies_only_above_ten_mebibytes():
    at_floor = zipped({"cat/a.png": b"\x00" * (10 * 1024**2)})  # ratio ~1000, but not larger than 10 MiB
    with pytest.raises(XaiError, match="is not an image"):  # passed the bomb check, then failed as an image
        load_images([("z.zip", at_floor)], IMAGE_MODEL)
    with pytest.raises(XaiError, match="looks like a zip bomb"):
        load_images([("z.zip", zipped({"cat/a.png": b"\x00" * (10 * 1024**2 + 1)}))], IMAGE_MODEL)


def test_zip_ratio_limit_at_and_one_past(monkeypatch):
    archive = zipped({"cat/a.png": b"\x00" * (11 * 1024**2)})
    member = zipfile.ZipFile(io.BytesIO(archive)).infolist()[0]
    ratio = member.file_size / member.compress_size
    monkeypatch.setattr(data_loading, "MAX_ZIP_RATIO", ratio)
    with pytest.raises(XaiError, match="is not an image"):
        load_images([("z.zip", archive)], IMAGE_MODEL)
    monkeypatch.setattr(data_loading, "MAX_ZIP_RATIO", ratio - 1e-6)
    with pytest.raises(XaiError, match="looks like a zip bomb"):
        load_images([("z.zip", archive)], IMAGE_MODEL)


def test_zip_total_size_limit_at_and_one_past(monkeypatch):
    members = {"cat/a.png": png(), "dog/b.png": png((40, 40))}
    total = sum(len(v) for v in members.values())
    monkeypatch.setattr(data_loading, "MAX_ZIP_UNCOMPRESSED_BYTES", total)
    assert load_images([("z.zip", zipped(members))], IMAGE_MODEL).labels.tolist() == [0, 1]
    monkeypatch.setattr(data_loading, "MAX_ZIP_UNCOMPRESSED_BYTES", total - 1)
    with pytest.raises(XaiError, match="'z.zip' unpacks to"):
        load_images([("z.zip", zipped(members))], IMAGE_MODEL)


def lying_zip() -> bytes:
    """A zip whose central directory declares its member 10 bytes shorter than it is."""
    archive = bytearray(zipped({"cat/a.png": png()}))
    at = archive.find(b"PK\x01\x02")  # central directory entry; its uncompressed size sits at offset 24
    size = struct.unpack("<I", archive[at + 24: at + 28])[0]
    archive[at + 24: at + 28] = struct.pack("<I", size - 10)
    return bytes(archive)


def damaged_zip() -> bytes:
    """A zip whose member's compressed bytes were flipped in transit (its CRC no longer matches)."""
    archive = bytearray(zipped({"cat/a.png": png() * 3}))
    archive[40] ^= 0xFF  # inside the member's data, just past its local header and name
    return bytes(archive)


def test_a_member_larger_than_its_entry_declares_is_refused():
    with pytest.raises(XaiError, match="larger than its zip entry declares|damaged"):
        load_images([("z.zip", lying_zip())], IMAGE_MODEL)


def test_a_damaged_zip_member_is_refused_with_a_message():
    with pytest.raises(XaiError, match="damaged|not a valid zip"):
        load_images([("z.zip", damaged_zip())], IMAGE_MODEL)


def test_table_row_limit_at_and_one_past(monkeypatch):
    monkeypatch.setattr(data_loading, "MAX_TABLE_ROWS", 3)
    assert len(read_table(b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n", "t.csv")) == 3
    with pytest.raises(XaiError, match="'t.csv' has 4 rows; the limit is 3"):
        read_table(b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n", "t.csv")
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1.0] * 4}).to_parquet(buffer)
    with pytest.raises(XaiError, match="has 4 rows; the limit is 3"):
        read_table(buffer.getvalue(), "t.parquet")


def test_table_size_limit_at_and_one_past(monkeypatch):
    data = b"a,b,c\n1,2,3\n"
    monkeypatch.setattr(data_loading, "MAX_TABLE_BYTES", len(data))
    assert read_table(data, "t.csv").shape == (1, 3)
    monkeypatch.setattr(data_loading, "MAX_TABLE_BYTES", len(data) - 1)
    with pytest.raises(XaiError, match="'t.csv' is 0 MiB; the limit is 0 MiB"):
        read_table(data, "t.csv")


# ---------------------------------------------------------------------------------------- targets at the boundary


@pytest.mark.parametrize("target, labels", [
    ("yes\nno\n", [1, 0]),
    ("1\n0\n", [1, 0]),  # the last class index
    ("1.0\n0.0\n", [1, 0]),
])
def test_target_labels_by_name_or_index(target, labels):
    rows = [f"{i},{i},{i},{t}" for i, t in enumerate(target.split())]
    table = prepare_table(read_table(("a,b,c,target\n" + "\n".join(rows) + "\n").encode(), "t.csv"), TABLE_MODEL)
    assert table.y.tolist() == labels


@pytest.mark.parametrize("bad", ["2", "-1", "0.5", "yess"])
def test_target_labels_outside_the_classes_are_refused(bad):
    with pytest.raises(XaiError, match=rf"Target values in 'target' \['{bad}'\] are neither classes of this model "
                                        r"\(no, yes\) nor class indices 0…1\. Pick the label column"):
        prepare_table(read_table(f"a,b,c,target\n1,2,3,1\n1,2,3,{bad}\n".encode(), "t.csv"), TABLE_MODEL)


def test_targets_of_a_model_whose_classes_are_numbers():
    model = ModelInfo(input_kind="tabular", input_shape=(1,), feature_names=("a",), class_names=("1", "2", "3"))
    table = prepare_table(read_table(b"a,label\n0,3\n0,1\n0,2\n", "t.csv"), model)
    assert table.y.tolist() == [2, 0, 1]


def test_regression_targets_must_be_numbers():
    model = ModelInfo(task="regression", input_kind="tabular", input_shape=(1,), feature_names=("a",))
    assert prepare_table(read_table(b"a,y\n1,2.5\n2,-1\n", "t.csv"), model).y.tolist() == [2.5, -1.0]
    with pytest.raises(XaiError, match="target column 'y' must be numeric"):
        prepare_table(read_table(b"a,y\n1,2.5\n2,high\n", "t.csv"), model)


def test_target_column_choice():
    frame = read_table(b"a,b,c,target,other\n1,2,3,yes,no\n", "t.csv")
    assert prepare_table(frame, TABLE_MODEL).y.tolist() == [1]
    assert prepare_table(frame, TABLE_MODEL, target_column="other").y.tolist() == [0]
    assert prepare_table(frame, TABLE_MODEL, target_column="").y is None
    with pytest.raises(XaiError, match="Target column 'nope' is not in the table"):
        prepare_table(frame, TABLE_MODEL, target_column="nope")
