"""Image explanations: where does the model look? Grad-CAM and the other Captum attributions, with trust metrics."""

from __future__ import annotations

import io

import numpy as np
import streamlit as st

from xai_core.attribution.image import (METHODS, attention_support, available_methods, default_layer, default_method,
                                        explain_batch, layer_catalogue)
from xai_core.datasets import images_to_tensor
from xai_core.metrics import faithfulness_curves, localisation, sanity_check
from xai_core.viz.image import (COLORMAPS, faithfulness_figure, image_figure, overlay, overlay_figure,
                                overlay_grid_figure, probabilities_figure, sanity_figure)
from ui import state
from ui.look import card, figure, page_header, png_bytes, user_errors

page_header("Image explanations", "Where in the image does the model find its evidence?")


@st.cache_data(max_entries=16, show_spinner=False)
def cached_layers(model_sha: str, _model):
    """(name, how its output lies on the image) of every layer layer methods can use, and the default one."""
    layers = [(layer.name, layer.layout.describe()) for layer in layer_catalogue(_model)]
    return layers, default_layer(_model) if _model.supports_layer_methods else None


@st.cache_data(max_entries=16, show_spinner=False)
def cached_methods(model_sha: str, _model):
    """The methods this model supports, and what attention methods assume on it (or why they are not offered)."""
    return available_methods(_model), attention_support(_model)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_explanation(model_sha: str, data_key: str, indices: tuple, method: str, targets: tuple | None,
                       layer: str | None, options: tuple, _model, _images):
    """Explanations of the given images, with a counting progress bar while computing (none on a cache hit)."""
    bar = st.progress(0.0, text=f"explaining 0/{len(indices)} images")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(done / total, text=message)

    result = explain_batch(_model, _images, method, targets=None if targets is None else list(targets), layer=layer,
                           batch_size=16, progress=progress, **dict(options))
    bar.empty()
    return result


@st.cache_data(max_entries=64, show_spinner=False)
def cached_faithfulness(model_sha: str, data_key: str, n: int, method: str, layer: str | None, _model, _images,
                        _explained):
    """Deletion/insertion curves of the first `n` images' cached default explanation (the same for every session)."""
    return faithfulness_curves(_model, _images, _explained.maps, _explained.targets, method)


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_figure(kind: str, key: tuple, _build):
    """The figure `_build()` makes, built once per process for `key` (everything it is drawn from): a rerun or a
    return to this page sends it again without rebuilding it (Plotly validates every property: ~0.1–0.4 s for a
    gallery). Shared by every session, so never changed after it is built."""
    return _build()


def method_options(key: str, prefix: str = "") -> tuple:
    """The settings a method takes, as page controls (returned sorted, so they can key a cache)."""
    options: dict = {}
    if key == "integrated_gradients":
        c = st.columns(3)
        options["baseline"] = c[0].selectbox("IG baseline", ["black", "blur", "noise"], key=f"{prefix}ig_base",
                                             help="The image that stands for 'no evidence'.")
        options["n_steps"] = c[1].slider("IG steps", 8, 128, 32, key=f"{prefix}ig_steps")
        options["smoothgrad"] = c[2].toggle("SmoothGrad (average over noisy copies)", key=f"{prefix}ig_sg")
    elif key == "occlusion":
        c = st.columns(2)
        options["window"] = c[0].slider("Occlusion window (pixels)", 2, 32, 8, key=f"{prefix}occ_w")
        options["stride"] = c[1].slider("Stride (pixels)", 1, 16, 4, key=f"{prefix}occ_s")
    elif key == "lime":
        c = st.columns(2)
        options["n_samples"] = c[0].slider("LIME samples", 50, 1000, 200, step=50, key=f"{prefix}lime_n")
        options["n_segments"] = c[1].slider("Superpixels", 10, 150, 40, step=5, key=f"{prefix}lime_seg")
    return tuple(sorted(options.items()))


def assumes(key: str, layer: str | None, options: dict, layers: dict | None = None, attention=None) -> str:
    if METHODS[key].needs_layer:
        shape = (layers or {}).get(layer)
        return f"Layer: {layer}" + (f" ({shape}{'; extra tokens dropped' if 'extra' in shape else ''})." if shape else ".")
    if METHODS[key].needs_attention and attention is not None:
        return "Assumes " + attention.describe()
    if key == "integrated_gradients":
        return f"Baseline: {options.get('baseline', 'black')} image, {options.get('n_steps', 32)} steps" + (
            ", SmoothGrad." if options.get("smoothgrad") else ".")
    if key == "occlusion":
        return f"Patches of {options.get('window')}×{options.get('window')} px, stride {options.get('stride')} px, replaced by the mean pixel."
    if key == "lime":
        return f"{options.get('n_segments')} superpixels, {options.get('n_samples')} perturbed samples, seed 0."
    return ""


def show(selection: state.Selection) -> None:
    model, data = selection.model, selection.data
    info = model.info
    layers, auto_layer = cached_layers(model.sha256, model)
    available, attention = cached_methods(model.sha256, model)
    if not model.supports_layer_methods:
        st.info("This TorchScript model hides its layers from hooks, so Grad-CAM and Guided Grad-CAM are not offered. "
                "Export it with torch.export (.pt2) for layer methods.")
    elif not attention.available and any("tokens" in shape or "channels last" in shape for _, shape in layers):
        st.caption(":material/info: Attention rollout is not offered for this transformer: " + attention.reason)

    labels = [f"{i}: {name.rsplit('/', 1)[-1]}" + (f" ({info.class_names[data.labels[i]]})" if data.labels is not None else "")
              for i, name in enumerate(data.names)]
    c = st.columns([2, 2, 2])
    index = c[0].selectbox("Image", range(len(data)), format_func=lambda i: labels[i], key="ie_image")
    method = c[1].selectbox("Method", available, index=available.index(default_method(model, available)),
                            format_func=lambda k: METHODS[k].name, key="ie_method")
    x_probs = model.predict_proba(images_to_tensor(data.images[[index]], info))[0]
    predicted = int(x_probs.argmax())
    target = c[2].selectbox("Explain class", range(len(info.class_names)), index=predicted,
                            format_func=lambda j: f"{info.class_names[j]}" + (" (predicted)" if j == predicted else ""),
                            key=f"ie_target_{index}")
    layer = None
    c = st.columns([2, 2, 2])
    shapes = dict(layers)
    if METHODS[method].needs_layer:
        names = [name for name, _ in layers]
        layer = c[0].selectbox("Layer", names, index=names.index(auto_layer) if auto_layer in names else len(names) - 1,
                               format_func=lambda n: f"{n} ({shapes[n]})", key="ie_layer",
                               help="Token outputs of transformers are shown as their grid of patches (C×h×w); extra "
                                    "tokens such as a class token are dropped.")
    colormap = c[1].selectbox("Colour map (unsigned maps)", COLORMAPS, key="ie_cmap")
    opacity = c[2].slider("Heatmap opacity", 0.0, 1.0, 0.6, 0.05, key="ie_opacity")
    options = method_options(method)

    result = cached_explanation(model.sha256, selection.data_key, (index,), method, (target,), layer, options,
                                model, data.images[[index]])
    attribution = result.maps[0]
    left, right = st.columns([3, 2], gap="large")
    with left:
        figure(cached_figure("overlay", (model.sha256, selection.data_key, index, method, target, layer, options,
                                         colormap, opacity),
                             lambda: overlay_figure(data.images[index], attribution, result.signed,
                                                    f"{result.method_name} for '{info.class_names[target]}'", colormap,
                                                    opacity)),
               METHODS[method].how_to_read + " " + assumes(method, result.layer, dict(options), shapes, attention),
               key="ie_overlay")
        for note in result.notes:
            st.caption(":material/info: " + note)
        d = st.columns(2)
        d[0].download_button("Overlay (PNG)", png_bytes(overlay(data.images[index], attribution, result.signed, colormap, opacity)),
                             file_name=f"{method}_{index}.png", mime="image/png", key="ie_dl_png", icon=":material/download:")
        buffer = io.BytesIO()
        np.save(buffer, attribution)
        d[1].download_button("Raw attribution (.npy)", buffer.getvalue(), file_name=f"{method}_{index}.npy",
                             key="ie_dl_npy", icon=":material/download:")
    with right:
        figure(cached_figure("image", (selection.data_key, index),
                             lambda: image_figure(data.images[index], "The image", height=280)), key="ie_original")
        figure(cached_figure("probabilities", (model.sha256, selection.data_key, index, target),
                             lambda: probabilities_figure(x_probs, info.class_names, highlight=target)), key="ie_probs")
        if data.masks is not None:
            loc = localisation(result.maps, data.masks[[index]])
            st.caption(f"Ground-truth object mask: the map's peak is {'inside ✓' if loc.hits[0] else 'outside ✗'} it; "
                       f"{loc.energy_inside[0]:.0%} of the positive attribution lies on the object "
                       f"({data.masks[index].mean():.0%} of the image).")

    compare_methods(selection, index, target, layer, colormap, opacity, available)
    gallery(selection, method, layer, options, colormap, opacity)
    trust(selection, index, method, target, layer, options)


def compare_methods(selection, index, target, layer, colormap, opacity, available) -> None:
    model, data = selection.model, selection.data
    card("Side by side", "Do different methods agree on where the evidence is?")
    preferred = (("grad_cam", "gradient_rollout", "attention_rollout") if "attention_rollout" in available else
                 ("grad_cam", "integrated_gradients", "occlusion"))
    chosen = st.multiselect("Methods", available, default=[k for k in preferred if k in available],
                            format_func=lambda k: METHODS[k].name, key="ie_compare")
    if not chosen:
        return
    results = [cached_explanation(model.sha256, selection.data_key, (index,), key, (target,),
                                  layer if METHODS[key].needs_layer else None, (), model, data.images[[index]])
               for key in chosen]
    figure(cached_figure("side_by_side", (model.sha256, selection.data_key, index, target, layer, tuple(chosen),
                                          colormap, opacity),
                         lambda: overlay_grid_figure([data.images[index]] * len(results), [r.maps[0] for r in results],
                                                     [r.signed for r in results], [r.method_name for r in results],
                                                     colormap, opacity, columns=len(results))),
           "Each method with its default settings. Red/blue maps are signed (evidence for/against the class).",
           key="ie_grid", download_name="methods_side_by_side")


def gallery(selection, method, layer, options, colormap, opacity) -> None:
    model, data = selection.model, selection.data
    info = model.info
    card("Gallery", "Where does the model look across many images?")
    n = st.slider("Images", 4, min(64, len(data)), min(16, len(data)), step=4, key="ie_gallery_n")
    indices = tuple(range(n))
    result = cached_explanation(model.sha256, selection.data_key, indices, method, None, layer, options, model,
                                data.images[list(indices)])
    titles, wrong = [], []
    for i, j in enumerate(indices):
        guess = info.class_names[result.predicted[i]]
        if data.labels is not None:
            titles.append(f"{info.class_names[data.labels[j]]} → {guess}")
            wrong.append(bool(result.predicted[i] != data.labels[j]))
        else:
            titles.append(guess)
    figure(cached_figure("gallery", (model.sha256, selection.data_key, n, method, layer, options, colormap, opacity),
                         lambda: overlay_grid_figure([data.images[j] for j in indices], list(result.maps),
                                                     [result.signed] * n, titles, colormap, opacity, columns=8,
                                                     red_titles=wrong or None)),
           f"{result.method_name} for each image's predicted class (true → predicted; red = wrong).",
           key="ie_gallery", download_name="gallery")
    if data.masks is not None:
        loc = localisation(result.maps, data.masks[list(indices)])
        m = st.columns(2)
        m[0].metric("Pointing game", f"{loc.pointing_accuracy:.0%}",
                    help="Share of images whose map peaks on the object (within 2 px of its mask).")
        m[1].metric("Attribution on the object", f"{loc.mean_energy_inside:.0%}",
                    help=f"Mean share of positive attribution inside the mask; the objects cover "
                         f"{data.masks[list(indices)].mean():.0%} of the pixels on average.")


def trust(selection, index, method, target, layer, options) -> None:
    model, data = selection.model, selection.data
    card("Can this map be trusted?", "Faithfulness: does removing the highlighted pixels really change the prediction? "
         "Sanity: does the map change when the model's weights are randomised?")
    n = min(8, len(data))
    chosen = st.session_state.get("ie_compare") or [method]
    curves = {}
    for key in chosen:
        key_layer = layer if METHODS[key].needs_layer else None
        explained = cached_explanation(model.sha256, selection.data_key, tuple(range(n)), key, None, key_layer, (),
                                       model, data.images[:n])
        curves[METHODS[key].name] = cached_faithfulness(model.sha256, selection.data_key, n, key, key_layer, model,
                                                        data.images[:n], explained)
    figure(cached_figure("faithfulness", (model.sha256, selection.data_key, n, tuple(chosen), layer),
                         lambda: faithfulness_figure(curves)),
           f"Averaged over the first {n} images; pixels are replaced by a blurred copy. "
           "A random map gives roughly the same curve for deletion and insertion.", key="ie_faith",
           download_name="faithfulness")
    if st.button(f"Run the sanity check for {METHODS[method].name} (randomises the layers of a copy; ~10 s)", key="ie_sanity"):
        with st.spinner("Randomising layers and recomputing maps…"):
            check = sanity_check(model, data.images[:4], method, layer=layer, **dict(options))
        figure(sanity_figure(check), "Spearman correlation between the original map and the map of a model whose "
               "layers (output side first) got random weights.", key="ie_sanity_fig")
        if check.passed:
            st.success(f"{METHODS[method].name} depends on the weights: its map changes once they are random.")
        else:
            st.warning(f"{METHODS[method].name}'s map barely changes with random weights: it may show the image, not the model.")


with user_errors():
    selection = state.current_selection()
    if selection.model.info.input_kind != "image":
        st.info("This page explains image models. For tables, open **Feature importance**; or pick an image demo "
                "(shapes, digits) on **Model & data**.")
    elif selection.data is None:
        st.info("Upload images (or a zip of class folders) on **Model & data** first.")
    else:
        show(selection)
