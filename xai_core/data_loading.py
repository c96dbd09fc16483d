"""Images and tables in, checked against a model: `ImageSet` / `TableSet` out, or an `XaiError` that says what does not fit."""

from __future__ import annotations

import csv
import io
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from typing import Iterable

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from xai_core.datasets import ImageSet, TableSet, TextSet
from xai_core.errors import XaiError
from xai_core.model import ModelInfo
from xai_core.validation import check_table, class_indices

MAX_IMAGE_PIXELS = 40_000_000  # per image, checked from the header before decoding
MAX_IMAGES = 2_000
MAX_ZIP_UNCOMPRESSED_BYTES = 1024**3
MAX_ZIP_RATIO = 200  # uncompressed / compressed per member; more is a zip bomb, not a photo
MAX_TABLE_BYTES = 200 * 1024**2
MAX_TABLE_ROWS = 1_000_000
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv", ".txt")


def load_data(files: list[tuple[str, bytes]], info: ModelInfo, target_column: str | None = None,
              ignore_columns: Iterable[str] = (), label_pattern: str | None = None) -> ImageSet | TableSet:
    """Uploaded files → the dataset for this model: one table (CSV/Parquet), or images and zips of images.

    Tables: `target_column` as in `prepare_table`, `ignore_columns` dropped first (IDs, free text…). Images: labelled by
    their class folder in a zip, by `label_pattern` (a regular expression on the file name whose first group, or whole
    match, is the class name or index), or by a CSV of file → label uploaded together with them.
    """
    if not files:
        raise XaiError("No data files were given.")
    if info.input_kind == "text":
        return load_texts(files, info, target_column)
    tables = [(n, d) for n, d in files if n.lower().endswith(TABLE_SUFFIXES)]
    images = [(n, d) for n, d in files if not n.lower().endswith(TABLE_SUFFIXES)]
    if tables and images:
        if info.input_kind == "tabular":
            raise XaiError(f"This model takes a table: upload the table alone, not both a table and images "
                           f"({images[:2]}).")
        if len(tables) > 1:
            raise XaiError(f"With images, upload at most one table: a CSV of file name → label. Got {len(tables)} tables.")
        name, data = tables[0]
        return load_images(images, info, label_pattern=label_pattern, label_map=(name, read_table(data, name)))
    if tables:
        if info.input_kind != "tabular":
            raise XaiError("This model takes images, not a table. Upload images or a zip of class folders (a CSV "
                           "next to images is read as file name → label).")
        if len(tables) > 1:
            raise XaiError(f"Upload one table, not {len(tables)}.")
        name, data = tables[0]
        return prepare_table(read_table(data, name), info, target_column, ignore_columns=ignore_columns)
    return load_images(files, info, label_pattern=label_pattern)


# ---------------------------------------------------------------------------------------- images


def load_images(files: Iterable[tuple[str, bytes]], info: ModelInfo, label_pattern: str | None = None,
                label_map: tuple[str, pd.DataFrame] | None = None) -> ImageSet:
    """Decode uploaded images and zips, brought to the model's input size, with labels where they can be found.

    `files` are (name, bytes) pairs. Labels come from, in this order: `label_map` (a table with a file-name column and
    a label column), `label_pattern` (regex on the file name), or a zip's class folders (named after the model's class
    names or class indices). Loose images with none of these are unlabelled.
    """
    if info.input_kind != "image":
        raise XaiError("This model takes a table, not images. Upload a CSV or Parquet file instead.")
    images, names, folders = [], [], []
    notes: list[str] = []
    for name, data in files:
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            for member, member_bytes, folder in _zip_images(name, data):
                images.append(decode_image(member_bytes, member, info, notes))
                names.append(member)
                folders.append(folder)
        else:
            images.append(decode_image(data, name, info, notes))
            names.append(name)
            folders.append(None)
        if len(images) > MAX_IMAGES:
            raise XaiError(f"More than {MAX_IMAGES} images; upload a smaller sample.")
    if not images:
        raise XaiError("No images found. Upload PNG, JPEG or WebP files, or a zip of them in class folders.")
    if label_map is not None:
        labels = _labels_from_map(names, *label_map, info, notes)
    elif label_pattern:
        labels = _labels_from_pattern(names, label_pattern, info, notes)
    else:
        labels = _labels_from_folders(folders, info, notes)
    return ImageSet(images=np.stack(images), names=names, labels=labels, notes=_dedupe(notes))


def decode_image(data: bytes, name: str, info: ModelInfo, notes: list[str] | None = None) -> np.ndarray:
    """One image file → uint8 (H, W, C) at the model's size and channels. Converts modes; refuses bombs."""
    notes = notes if notes is not None else []
    if not data:
        raise XaiError(f"'{name}' is empty (0 bytes).")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise XaiError(f"'{name}' declares an enormous size (a decompression bomb); refused.") from None
    except UnidentifiedImageError:
        raise XaiError(f"'{name}' is not an image (or not one of PNG, JPEG, WebP).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise XaiError(f"'{name}' is damaged or truncated and cannot be decoded ({exc}).") from None
    if img.format not in IMAGE_FORMATS:
        raise XaiError(f"'{name}' is a {img.format} image; upload PNG, JPEG or WebP.")
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise XaiError(f"'{name}' is {width}×{height} pixels, over the limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. "
                       "Downscale it before uploading.")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise XaiError(f"'{name}' is damaged or truncated and cannot be decoded ({exc}).") from None
    img = ImageOps.exif_transpose(img)
    img = _to_model_mode(img, info.channels, name, notes)
    img = resize_to_input(img, info, notes)
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def resize_to_input(img: Image.Image, info: ModelInfo, notes: list[str] | None = None) -> Image.Image:
    """Bring an image to the model's H×W as `info.resize` says: centre-crop, stretch, or pad (letterbox, black)."""
    notes = notes if notes is not None else []
    target_h, target_w = info.image_size
    if img.size == (target_w, target_h):
        return img
    same_aspect = abs(img.width / img.height - target_w / target_h) <= 0.01
    if same_aspect or info.resize == "stretch":
        notes.append(f"Images were resized to the model's input size {target_w}×{target_h}"
                     + ("" if same_aspect else ", stretched (aspect ratio not kept)") + ".")
        return img.resize((target_w, target_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if info.resize == "pad":
        notes.append(f"Images whose aspect ratio differs from the model's {target_w}×{target_h} were resized to fit "
                     "and padded with black.")
        return ImageOps.pad(img, (target_w, target_h), method=Image.Resampling.BILINEAR, color=0)
    notes.append(f"Images whose aspect ratio differs from the model's {target_w}×{target_h} were resized and centre-cropped.")
    return ImageOps.fit(img, (target_w, target_h), method=Image.Resampling.BILINEAR)


def _to_model_mode(img: Image.Image, channels: int, name: str, notes: list[str]) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(img, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if hi == lo else (array - lo) / (hi - lo) * 255.0
        img = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
        notes.append("16-bit or float images were rescaled to 8 bits.")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
        notes.append("Transparent images were placed on a white background.")
    target = "RGB" if channels == 3 else "L"
    if img.mode == "CMYK" and target == "RGB":
        notes.append("CMYK images were converted to RGB.")
    if channels not in (1, 3):
        raise XaiError(f"The model takes {channels}-channel images; only 1 (grey) and 3 (RGB) are supported.")
    if img.mode != target:
        if target == "L" and img.mode not in ("L", "1"):
            notes.append("Colour images were converted to greyscale for this model.")
        if target == "RGB" and img.mode in ("L", "1"):
            notes.append("Greyscale images were converted to RGB for this model.")
        img = img.convert(target)
    return img


def _zip_images(name: str, data: bytes):
    """Yield (member name, bytes, class folder or None) for the images of a zip, checking for bombs and traversal."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError):
        raise XaiError(f"'{name}' is not a valid zip file.") from None
    bad = [i.filename for i in infos if i.filename.startswith(("/", "\\")) or ".." in i.filename.replace("\\", "/").split("/")
           or ":" in i.filename]
    if bad:
        raise XaiError(f"'{name}' contains unsafe paths ({bad[:3]}); refused. Zip the image folders without '..' or absolute paths.")
    members = [i for i in infos if not i.is_dir() and i.filename.lower().endswith(IMAGE_SUFFIXES)
               and "__MACOSX" not in i.filename and not posixpath.basename(i.filename).startswith(".")]
    total = sum(i.file_size for i in members)
    if total > MAX_ZIP_UNCOMPRESSED_BYTES:
        raise XaiError(f"'{name}' unpacks to {total / 1024**2:.0f} MiB, over the {MAX_ZIP_UNCOMPRESSED_BYTES // 1024**2} MiB limit.")
    for i in members:
        if i.compress_size and i.file_size / i.compress_size > MAX_ZIP_RATIO and i.file_size > 10 * 1024**2:
            raise XaiError(f"'{name}' looks like a zip bomb ({i.filename} expands {i.file_size // i.compress_size}×); refused.")
    if len(members) > MAX_IMAGES:
        raise XaiError(f"'{name}' holds {len(members)} images; the limit is {MAX_IMAGES}. Upload a sample.")
    if not members:
        raise XaiError(f"'{name}' holds no PNG, JPEG or WebP images.")
    parts = [i.filename.split("/") for i in members]
    # A single top folder wrapping the class folders (as `zip -r test.zip test/` makes) is dropped.
    while all(len(p) > 2 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    for info, p in zip(members, parts):
        try:
            with archive.open(info) as handle:
                member_bytes = handle.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise XaiError(f"'{name}': {info.filename} is damaged ({str(exc)[:80]}); refused. Zip the images again.") from None
        if len(member_bytes) > info.file_size:
            raise XaiError(f"'{name}': {info.filename} is larger than its zip entry declares; refused.")
        yield info.filename, member_bytes, (p[-2] if len(p) >= 2 else None)


def _labels_from_pattern(names: list[str], pattern: str, info: ModelInfo, notes: list[str]) -> np.ndarray | None:
    """Labels from file names: the regex's first group (or its whole match) on each file's base name."""
    if info.task != "classification":
        raise XaiError("Labels from file names are class labels; this model is a regression model.")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise XaiError(f"The file-name pattern {pattern!r} is not a valid regular expression ({exc}). Example: "
                       r"'^([a-z]+)_\d+' takes 'cat' from 'cat_12.png'.") from None
    found, unmatched = [], []
    for name in names:
        base = posixpath.basename(name.replace("\\", "/"))
        match = regex.search(base)
        if match is None:
            unmatched.append(base)
            continue
        found.append(match.group(1) if regex.groups else match.group(0))
    if unmatched:
        raise XaiError(f"The file-name pattern {pattern!r} does not match {len(unmatched)} file(s), e.g. {unmatched[:3]}. "
                       "Every image needs a label: fix the pattern, or clear it to load the images unlabelled.")
    labels = class_indices(found, info.class_names, "Labels taken from file names",
                           " Adjust the pattern so its first group is the class name or index.")
    notes.append(f"Labels were read from the file names with the pattern {pattern!r}.")
    return labels


def _labels_from_map(names: list[str], table_name: str, table: pd.DataFrame, info: ModelInfo,
                     notes: list[str]) -> np.ndarray:
    """Labels from a table of file name → label: the column holding the image names, and one label column."""
    if info.task != "classification":
        raise XaiError(f"'{table_name}' next to images is read as file name → class label, but this model is a "
                       "regression model.")
    bases = [posixpath.basename(n.replace("\\", "/")) for n in names]
    wanted = set(bases) | set(names)
    hits = {c: table[c].astype(str).str.strip().map(lambda v: posixpath.basename(v.replace("\\", "/"))).isin(wanted).sum()
            for c in table.columns}
    file_column = max(hits, key=hits.get)
    if hits[file_column] == 0:
        raise XaiError(f"'{table_name}' has no column of image file names (looked for names such as {bases[:2]}). Give it "
                       "two columns, e.g. 'file,label', one row per image.")
    others = [c for c in table.columns if c != file_column]
    preferred = [c for c in others if c.lower() in ("label", "labels", "class", "target", "y", "category")]
    if len(others) != 1 and len(preferred) != 1:
        raise XaiError(f"'{table_name}': which column is the label? Found {others[:6]}. Keep only the file-name column "
                       "and one column named 'label'.")
    label_column = preferred[0] if preferred else others[0]
    keys = table[file_column].astype(str).str.strip().map(lambda v: posixpath.basename(v.replace("\\", "/")))
    if keys.duplicated().any():
        raise XaiError(f"'{table_name}' lists {sorted(set(keys[keys.duplicated()]))[:3]} more than once; one row per image.")
    mapping = dict(zip(keys, table[label_column]))
    missing = [b for b in bases if b not in mapping]
    if missing:
        raise XaiError(f"'{table_name}' has no label for {len(missing)} image(s), e.g. {missing[:3]}. Add a row for "
                       "each image, or upload the images without the table.")
    labels = class_indices([mapping[b] for b in bases], info.class_names, f"Labels in '{table_name}'",
                           " Use the model's class names or indices.")
    notes.append(f"Labels were read from '{table_name}' (column '{label_column}' by '{file_column}').")
    return labels


def _labels_from_folders(folders: list[str | None], info: ModelInfo, notes: list[str]) -> np.ndarray | None:
    if info.task != "classification" or all(f is None for f in folders):
        return None
    if any(f is None for f in folders):
        notes.append("Some images were not in a class folder, so no image is labelled.")
        return None
    return class_indices(folders, info.class_names, "Folder name(s)",
                         " Name the class folders after the model's classes or their indices.")


# ---------------------------------------------------------------------------------------- tables


def read_table(data: bytes, name: str) -> pd.DataFrame:
    """CSV (any common delimiter) or Parquet bytes → DataFrame, with duplicate headers refused."""
    if not data or not data.strip():
        raise XaiError(f"'{name}' is empty.")
    if len(data) > MAX_TABLE_BYTES:
        raise XaiError(f"'{name}' is {len(data) / 1024**2:.0f} MiB; the limit is {MAX_TABLE_BYTES // 1024**2} MiB.")
    if name.lower().endswith((".parquet", ".pq")) or data[:4] == b"PAR1":
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises many types for a file that is not Parquet
            raise XaiError(f"'{name}' could not be read as Parquet ({str(exc)[:120]}). Is it really a Parquet file?") from None
        header = [str(c) for c in frame.columns]
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("latin-1")
            except UnicodeDecodeError:
                raise XaiError(f"'{name}' is not a text CSV file.") from None
        if "\x00" in text[:4096]:
            raise XaiError(f"'{name}' is binary, not a CSV file.")
        delimiter = _sniff_delimiter(text)
        header = []
        for line_number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
            if line_number == 1:
                header = row
            elif row and len(row) != len(header):
                raise XaiError(f"'{name}': line {line_number} has {len(row)} fields but the header has {len(header)}. "
                               "Every row needs one value per column (is the delimiter right?).")
        try:
            frame = pd.read_csv(io.StringIO(text), sep=delimiter, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise XaiError(f"'{name}' is not a well-formed CSV file: {str(exc).strip()[:200]}. "
                           "Check that every row has as many fields as the header.") from None
        header = [h.strip() for h in header]
        frame.columns = [str(c).strip() for c in frame.columns]
    duplicates = sorted(c for c, n in Counter(header).items() if n > 1)
    if duplicates:
        raise XaiError(f"'{name}' has duplicate column names {duplicates}; each column needs a unique name.")
    if len(frame) == 0:
        raise XaiError(f"'{name}' has a header but no rows.")
    if len(frame) > MAX_TABLE_ROWS:
        raise XaiError(f"'{name}' has {len(frame):,} rows; the limit is {MAX_TABLE_ROWS:,}. Upload a sample.")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


TARGET_CANDIDATES = ("target", "label", "labels", "y", "class")


def prepare_table(frame: pd.DataFrame, info: ModelInfo, target_column: str | None = None,
                  ignore_columns: Iterable[str] = ()) -> TableSet:
    """Check a table against a tabular model: features by name (any order) or by position, numeric, finite.

    `target_column`: None finds it (the model's target name, then 'target', 'label', 'labels', 'y', 'class'); "" means
    no target. `ignore_columns` are dropped before anything else (IDs, free text, columns the model never saw).
    """
    if info.input_kind != "tabular":
        raise XaiError("This model takes images, not a table. Upload images or a zip of class folders.")
    notes: list[str] = []
    frame = frame.copy()
    ignore = [c for c in ignore_columns if c in frame.columns]
    unknown = [c for c in ignore_columns if c not in frame.columns]
    if unknown:
        raise XaiError(f"Columns to ignore {unknown[:5]} are not in the table (columns: {list(frame.columns)[:10]}).")
    if ignore:
        frame = frame.drop(columns=ignore)
        notes.append(f"Columns ignored as asked: {ignore[:8]}.")
    features = list(info.feature_names)
    auto_target = target_column is None
    if target_column is None:
        for candidate in (info.target_name, *TARGET_CANDIDATES):
            if candidate and candidate in frame.columns and candidate not in features:
                target_column = candidate
                notes.append(f"The column '{candidate}' was taken as the labels (change it in Target column).")
                break
    elif target_column == "":
        target_column = None
    elif target_column not in frame.columns:
        raise XaiError(f"Target column '{target_column}' is not in the table (columns: {list(frame.columns)[:10]}).")
    elif target_column in features:
        raise XaiError(f"'{target_column}' is one of the model's input features, so it cannot also be the label column. "
                       "Pick another Target column, or (none).")
    y_raw = frame.pop(target_column) if target_column else None
    n = len(features)
    present = [f for f in features if f in frame.columns]
    if len(present) == n:
        extra = [c for c in frame.columns if c not in features]
        if list(frame.columns[: n]) != features:
            notes.append("Columns were matched to the model's features by name and reordered.")
        if extra:
            notes.append(f"Columns not used by the model were ignored: {extra[:8]}.")
        X = frame[features]
    elif not present and frame.shape[1] == n:
        notes.append("No column names match the model's features, so columns were taken in order: "
                     f"{list(frame.columns[:4])}… as {features[:4]}….")
        X = frame.set_axis(features, axis=1)
    else:
        missing = [f for f in features if f not in frame.columns]
        hint = ""
        if frame.shape[1] == 1 and n > 1:
            hint = " The file has a single column: is the delimiter right?"
        elif not present and frame.shape[1] > n:
            extra = frame.shape[1] - n
            hint = (f" None of the column names match the model's features, and the table has {extra} column(s) more "
                    "than the model takes: " + ("pick the label column in Target column above" if auto_target and
                                                target_column is None else "choose the columns the model never saw")
                    + " (and ID or text columns in Columns to ignore), so the remaining columns are taken in order.")
        elif present:
            hint = " Columns are matched by name; rename them to the model's feature names, or pick the ones to ignore."
        raise XaiError(
            f"The model needs {n} features; the table has {frame.shape[1]} columns"
            f"{' besides the target' if target_column else ''}. Missing: {missing[:8]}"
            f"{' …' if len(missing) > 8 else ''}.{hint}"
        )
    X = _numeric_features(X)
    y = _prepare_target(y_raw, info) if y_raw is not None else None
    return TableSet(X=X.reset_index(drop=True), y=None if y is None else y.reset_index(drop=True),
                    target_name=target_column, notes=notes)


def suggest_label_pattern(names: list[str], class_names: Iterable[str]) -> str | None:
    """A file-name pattern that labels every image, when each name starts with a class name ('cat_12.png'), else None."""
    classes = sorted((str(c) for c in class_names), key=len, reverse=True)
    if not classes or not names:
        return None
    bases = [posixpath.basename(n.replace("\\", "/")) for n in names]
    pattern = "^(" + "|".join(re.escape(c) for c in classes) + r")(?=[_\-. ]|\d)"
    if all(re.search(pattern, b) for b in bases):
        return pattern
    by_index = r"^(\d+)(?=[_\-. ])"  # '3_17.png': the class index first
    found = [re.search(by_index, b) for b in bases]
    if all(found) and all(int(m.group(1)) < len(classes) for m in found):
        return by_index
    return None


def _numeric_features(X: pd.DataFrame) -> pd.DataFrame:
    problems = []
    out = {}
    for column in X.columns:
        values = pd.to_numeric(X[column], errors="coerce")
        bad = values.isna() & X[column].notna()
        if bad.any():
            rows = [int(r) + 1 for r in np.flatnonzero(bad.to_numpy())[:3]]
            examples = [str(v) for v in X[column][bad].unique()[:3]]
            problems.append(f"'{column}' has non-numeric values {examples} (rows {rows})")
        out[column] = values.astype(np.float64)
    if problems:
        raise XaiError("The model takes numbers only: " + "; ".join(problems[:5]) + ". Encode or remove them.")
    X = pd.DataFrame(out)
    check_table(X, "feature columns")
    return X


def _prepare_target(y: pd.Series, info: ModelInfo) -> pd.Series:
    if info.task == "regression":
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            raise XaiError(f"The target column '{y.name}' must be numeric for a regression model, and complete.")
        return values.astype(np.float64)
    return pd.Series(class_indices(y, info.class_names, f"Target values in '{y.name}'",
                                   " Pick the label column in Target column, or (none)."), name=y.name)


def _dedupe(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))


# ---------------------------------------------------------------------------------------- texts

TEXT_CANDIDATES = ("text", "document", "sentence", "review", "content", "body", "message")
MAX_DOCUMENTS = 100_000


def load_texts(files: list[tuple[str, bytes]], info: ModelInfo, label_column: str | None = None,
               text_column: str | None = None) -> TextSet:
    """Documents for a text model: a CSV/Parquet with a text column (and optionally a label column), or a .txt file
    with one document per line (unlabelled). Labels are class names or indices; an 'evidence' column (words known to
    carry the class, separated by spaces) is kept for scoring explanations."""
    if len(files) != 1:
        raise XaiError(f"Upload one file of documents (CSV, Parquet or .txt), not {len(files)}.")
    name, data = files[0]
    if name.lower().endswith(".txt"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise XaiError(f"'{name}' is not UTF-8 text.") from None
        lines = text.splitlines()
        if not any(line.strip() for line in lines):
            raise XaiError(f"'{name}' has no documents: write one document per line.")
        frame = pd.DataFrame({"text": lines})
        blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
        if blank:
            frame = frame[[bool(line.strip()) for line in lines]]
        notes = [f"{len(blank)} empty line(s) skipped (lines {blank[:5]}…)."] if blank else []
        return prepare_texts(frame, info, "text", "", notes=notes, source=name)
    return prepare_texts(read_table(data, name), info, text_column, label_column, source=name)


def prepare_texts(frame: pd.DataFrame, info: ModelInfo, text_column: str | None = None,
                  label_column: str | None = None, notes: list[str] | None = None, source: str = "the table") -> TextSet:
    """Check a table of documents against a text model and tokenize them. `label_column`: None finds it, "" none."""
    from xai_core.text.tokenizer import tokenize

    if info.input_kind != "text" or info.tokenizer is None:
        raise XaiError("This model does not take text; upload images or a table for it.")
    notes = list(notes or [])
    columns = [str(c) for c in frame.columns]
    if text_column is None:
        text_column = next((c for c in columns if c.lower() in TEXT_CANDIDATES), None)
        if text_column is None:
            textual = [c for c in columns if (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])) and c.lower() not in TARGET_CANDIDATES
                       and c.lower() != "evidence"]
            if len(textual) == 1:
                text_column = textual[0]
                notes.append(f"The column '{text_column}' was taken as the documents.")
    if text_column is None or text_column not in columns:
        raise XaiError(f"{source} has no text column: name the column of documents 'text' (or one of "
                       f"{list(TEXT_CANDIDATES[1:])}). Columns found: {columns[:10]}.")
    if len(frame) > MAX_DOCUMENTS:
        raise XaiError(f"{source} has {len(frame):,} documents; the limit is {MAX_DOCUMENTS:,}. Upload a sample.")
    raw = frame[text_column]
    empty = [int(i) + 1 for i in np.flatnonzero(raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy())]
    if empty:
        raise XaiError(f"{source}: {len(empty)} document(s) in '{text_column}' are empty (rows {empty[:5]}). Remove "
                       "those rows or give them text.")
    texts = [str(t) for t in raw]
    labels = None
    if label_column is None:
        label_column = next((c for c in (info.target_name, *TARGET_CANDIDATES) if c and c in columns
                             and c != text_column), None)
        if label_column:
            notes.append(f"The column '{label_column}' was taken as the labels.")
    elif label_column == "":
        label_column = None
    elif label_column not in columns:
        raise XaiError(f"Label column '{label_column}' is not in {source} (columns: {columns[:10]}).")
    if label_column:
        labels = class_indices(frame[label_column], info.class_names, f"Labels in '{label_column}'",
                               " Labels must be the model's classes (names or indices); or upload without labels.")
    evidence = None
    if "evidence" in columns and text_column != "evidence":
        evidence = [tuple(str(v).split()) if isinstance(v, str) else () for v in frame["evidence"]]
    documents = tokenize(texts, info.tokenizer)
    empty_tokens = [i + 1 for i, d in enumerate(documents) if d.n_words == 0]
    if empty_tokens:
        raise XaiError(f"{source}: {len(empty_tokens)} document(s) have no words the tokenizer can read (rows "
                       f"{empty_tokens[:5]}).")
    truncated = sum(d.truncated for d in documents)
    if truncated:
        notes.append(f"{truncated} document(s) are longer than the model's {info.tokenizer.max_length} tokens and were "
                     "truncated: words past the limit are not seen by the model, nor explained.")
    names = [f"doc {i + 1}" for i in range(len(texts))]
    return TextSet(texts=texts, names=names, labels=labels, documents=documents, evidence=evidence,
                   notes=_dedupe(notes))
