"""Training recipes: a model builder plus the hyper-parameters that go with it.

Each recipe is a named, frozen ``Recipe``; ``train`` records the one used (with
any command-line overrides) in the checkpoint folder and in ``bundle.json``
provenance, so a model can be rebuilt from its record.

Models output **logits** (no softmax): ``export_model`` wraps them for the
device with softmax and, optionally, test-time augmentation baked into the
graph: the mirror image (on by default) and a centred zoom-in (``tta_zoom``, off
by default), averaged (the device API is unchanged; each view costs one more pass
of the classifier).

Recipes:

* ``capstone`` - the compact CNN of the capstone report: 5x5 stem,
  conv-conv-pool blocks with SpatialDropout, global average pooling, Dense 128.
* ``bkvgg12`` - a BKVGG12-style grayscale VGG (Jonsson & Soderberg, Lund 2018):
  10 3x3 convolutions in 4 blocks + 2 dense layers, 48 px.
* ``edgenet`` (default) - a residual VGG sized for CPU training and a 1 ms
  int8 budget: a cheap 48 px stem, then most of the width at 12 and 6 px where
  it is cheap, BatchNorm, label smoothing, cosine Nesterov SGD, flip TTA at export.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .augment import AugmentSpec


class Recipe(BaseModel):
    """A model plus how to train it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    input_size: int = 48
    head: Literal["fer7", "valence3"] = Field(
        "fer7", description="fer7: 7 FER classes (valence by mapping); valence3: 3 valence classes")
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw", description="adamw, or sgd (momentum 0.9, Nesterov); both decay weights by lr * weight_decay per "
        "step, so SGD wants a far smaller weight_decay (about 5e-4) than AdamW (0.2 at lr 2e-3 in the default build)")
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout before the logits")
    spatial_dropout: float = Field(
        0.1, ge=0, lt=1, description="SpatialDropout2D rate of the deepest stage (edgenet: half of it at 12 px)")
    width: float = 1.0
    augment: AugmentSpec = AugmentSpec()
    class_weighting: str = Field("none", description="none | balanced | sqrt")
    genki_weight: float = Field(1.0, ge=0, description="loss weight of a GENKI photo relative to a FER image")
    flip_tta: bool = True
    tta_zoom: float = Field(
        0.0, ge=0, le=1.5, description="also average a view zoomed in by this factor (centre crop resized back, "
        "baked into the export like the mirror); 0 = off. Export only: training is the same either way")
    stem_convs: int = Field(
        1, ge=1, le=3, description="edgenet: 3x3 convolutions at 48 px before the first pooling (each adds few "
        "weights and many multiply-adds)")
    mid_channels: tuple[int, ...] | None = Field(
        None, description="edgenet: inner width of each residual block (structured pruning); None = block width")
    eca: bool = Field(
        False, description="edgenet: efficient channel attention (ECA-Net, Wang et al. 2020) on every residual "
        "branch: per-channel gates from a k-wide 1-D convolution over the branch's global average (k = 3-5 by the "
        "paper's rule), 3-5 weights a block. Squeeze-and-excitation's two dense layers (ratio 16) cost about 46 kB "
        "of int8 file at the shipped width, more than the 1 MB budget leaves")
    peer_heads: tuple[int, ...] = Field(
        (), description="edgenet: inner widths of peer heads, extra copies of the last residual block + classifier "
        "trained on the shared trunk next to the model's own head (on-the-fly native ensemble, Lan et al. 2018). "
        "Training only: the export keeps the model's own head, so size and latency do not change")
    peer_alpha: float = Field(
        0.5, ge=0, le=1, description="with peer_heads: weight of the distillation term, (1 - a) label loss + "
        "a T^2 KL(ensemble_T || head_T) for every head")
    peer_temperature: float = Field(3.0, gt=0, description="with peer_heads: softmax temperature T of that term")
    swa_epochs: int = Field(
        0, ge=0, description="stochastic weight averaging (Izmailov et al. 2018): after the cosine schedule, train "
        "this many more epochs at the constant swa_lr and average their end-of-epoch weights (BatchNorm statistics "
        "recomputed); 0 = off. Training only: the export has the same size and latency")
    swa_lr: float | None = Field(
        None, gt=0, description="with swa_epochs: the constant learning rate of that phase; None = 0.15 x lr")

    @property
    def swa_learning_rate(self) -> float:
        """The SWA phase's constant learning rate."""
        return self.swa_lr if self.swa_lr is not None else 0.15 * self.lr

    @field_validator("peer_heads")
    @classmethod
    def _positive_widths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 1 for m in v):
            raise ValueError("peer_heads are inner channel widths and must be positive, e.g. 192,192")
        return v

    @field_validator("tta_zoom")
    @classmethod
    def _zoom_in_only(cls, v: float) -> float:
        if 0 < v < 1:
            raise ValueError("tta_zoom must be 0 (off) or a zoom-in factor >= 1 such as 1.1; a zoom-out would "
                             "need pixels from outside the face crop")
        return v


def _layers():
    import keras

    return keras, keras.layers


def _conv_bn(x, filters: int, k: int = 3, stride: int = 1, name: str | None = None):
    _, L = _layers()
    x = L.Conv2D(filters, k, strides=stride, padding="same", use_bias=False,
                 kernel_initializer="he_normal", name=name)(x)
    x = L.BatchNormalization(momentum=0.95)(x)
    return L.ReLU()(x)


def build_capstone(r: Recipe, n_classes: int):
    """Compact CNN: 5x5 stem, conv-conv-pool blocks + SpatialDropout, GAP, Dense 128."""
    keras, L = _layers()
    w = lambda c: max(8, round(c * r.width))
    inp = keras.Input((r.input_size, r.input_size, 1), name="face")
    x = _conv_bn(inp, w(32), 5)
    for f in (32, 64, 128):
        x = _conv_bn(x, w(f))
        x = _conv_bn(x, w(f))
        x = L.MaxPooling2D()(x)
        x = L.SpatialDropout2D(r.spatial_dropout)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(128, activation="relu")(x)
    x = L.Dropout(r.dropout)(x)
    out = L.Dense(n_classes, name="logits", dtype="float32")(x)
    return keras.Model(inp, out, name="capstone")


def build_bkvgg12(r: Recipe, n_classes: int):
    """BKVGG12-style: [32,32] [64,64] [128,128,128] [256,256,256] convs, 2 x Dense 256."""
    keras, L = _layers()
    w = lambda c: max(8, round(c * r.width))
    inp = keras.Input((r.input_size, r.input_size, 1), name="face")
    x = inp
    for block in ((32, 32), (64, 64), (128, 128, 128), (256, 256, 256)):
        for f in block:
            x = _conv_bn(x, w(f))
        x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    for _ in range(2):
        x = L.Dense(256, activation="relu")(x)
        x = L.Dropout(r.dropout)(x)
    out = L.Dense(n_classes, name="logits", dtype="float32")(x)
    return keras.Model(inp, out, name="bkvgg12")


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's kernel size for ``channels``: the odd number at or above ``int((log2(C) + b) / gamma)``."""
    import math

    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def _channel_attention(y):
    """Efficient channel attention (Wang et al., CVPR 2020): gates in (0, 1) per channel from a 1-D convolution
    across the channels of the global average, no dimensionality reduction and a handful of weights."""
    _, L = _layers()
    c = y.shape[-1]
    # Channels moved to a spatial axis by static transposes, so the 1-D convolution is a plain int8 CONV_2D with one
    # filter (a Reshape of the batched tensor would add shape arithmetic to every block of the TFLite graph).
    s = L.GlobalAveragePooling2D(keepdims=True)(y)  # (N, 1, 1, C)
    s = L.Permute((1, 3, 2))(s)  # (N, 1, C, 1)
    s = L.Conv2D(1, (1, eca_kernel_size(c)), padding="same", use_bias=False, activation="sigmoid")(s)
    return L.Multiply()([y, L.Permute((1, 3, 2))(s)])


def _res_block(x, filters: int, stride: int, drop: float, mid: int | None = None, name: str | None = None,
               eca: bool = False):
    """A residual block; ``name`` names its last layer (its output tensor), e.g. where peer heads branch off;
    ``eca`` gates the branch's channels with efficient channel attention before the addition."""
    _, L = _layers()
    shortcut = x
    y = _conv_bn(x, mid or filters, 3, stride)
    y = L.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal")(y)
    y = L.BatchNormalization(momentum=0.95, gamma_initializer="zeros")(y)
    if eca:
        y = _channel_attention(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = L.Conv2D(filters, 1, strides=stride, use_bias=False, kernel_initializer="he_normal")(x)
        shortcut = L.BatchNormalization(momentum=0.95)(shortcut)
    y = L.Add()([y, shortcut])
    y = L.ReLU(name=None if drop > 0 else name)(y)
    if drop > 0:
        y = L.SpatialDropout2D(drop, name=name)(y)
    return y


def build_edgenet(r: Recipe, n_classes: int):
    """Residual VGG, ~1.1 M parameters (int8 bundle < 1 MB): 48 px stem (32) -> 24 px (64)
    -> 12 px (128, 2 blocks, where extra depth is cheap) -> 6 px (192) -> GAP -> logits."""
    keras, L = _layers()
    w = lambda c: max(8, round(c * r.width))
    inp = keras.Input((r.input_size, r.input_size, 1), name="face")
    x = inp
    for _ in range(r.stem_convs):
        x = _conv_bn(x, w(32), 3)
    x = L.MaxPooling2D()(x)  # 24
    mid = r.mid_channels or (None,) * 4
    x = _res_block(x, w(64), 1, 0.0, mid[0], eca=r.eca)
    sd = r.spatial_dropout
    x = _res_block(x, w(128), 2, sd / 2, mid[1], eca=r.eca)  # 12
    trunk = _res_block(x, w(128), 1, sd / 2, mid[2], name="trunk", eca=r.eca)
    out = _edgenet_head(trunk, r, n_classes, mid[3], "")  # 6 px
    if not r.peer_heads:
        return keras.Model(inp, out, name="edgenet")
    # Built after the model's own head, so that head's initial weights are those of a model without peers.
    peers = [_edgenet_head(trunk, r, n_classes, m, f"peer{i + 1}_") for i, m in enumerate(r.peer_heads)]
    both = L.Concatenate(dtype="float32", name="heads")([out, *peers])
    return keras.Model(inp, both, name="edgenet_peers")


def _edgenet_head(trunk, r: Recipe, n_classes: int, mid: int | None, prefix: str):
    """edgenet's last residual block (6 px), global average pooling, dropout and logits."""
    _, L = _layers()
    x = _res_block(trunk, max(8, round(192 * r.width)), 2, r.spatial_dropout, mid, eca=r.eca)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(r.dropout)(x)
    return L.Dense(n_classes, name=f"{prefix}logits", dtype="float32")(x)


def single_head(model):
    """The model's own head of a training model with peer heads (sharing its layers), or the model itself."""
    import keras

    if model.name != "edgenet_peers":
        return model
    return keras.Model(model.inputs, model.get_layer("logits").output, name="edgenet")


def head_count(recipe: Recipe) -> int:
    """How many heads the training model has (its logits are concatenated in this order)."""
    return 1 + len(recipe.peer_heads)


BUILDERS: dict[str, Callable[[Recipe, int], Any]] = {
    "capstone": build_capstone,
    "bkvgg12": build_bkvgg12,
    "edgenet": build_edgenet,
}

RECIPES: dict[str, Recipe] = {
    "capstone": Recipe(
        name="capstone",
        description="capstone compact CNN (5x5 stem, conv-conv-pool + SpatialDropout, GAP, Dense 128)",
        epochs=40, lr=2e-3, dropout=0.4,
    ),
    "bkvgg12": Recipe(
        name="bkvgg12",
        description="BKVGG12-style 48 px grayscale VGG (Lund 2018 baseline)",
        epochs=40, lr=1e-3, dropout=0.5,
    ),
    "edgenet": Recipe(
        name="edgenet",
        description="residual VGG for CPU training and 1 ms int8 inference; label smoothing, flip TTA",
        # Nesterov SGD since session 10: two seeds each, SGD got more faces / photos right than AdamW (lr 2e-3,
        # weight decay 0.02) on two of three held-out figures (docs/training.md).
        epochs=80, lr=0.1, optimizer="sgd", dropout=0.3, weight_decay=5e-4, warmup_epochs=0.5, genki_weight=2.0,
    ),
}
DEFAULT_RECIPE = "edgenet"


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe with ``overrides`` (None values ignored; a dict for ``augment`` changes only its keys) applied."""
    from edge.errors import ConfigError

    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    base = RECIPES[name].model_dump()
    upd = {k: v for k, v in overrides.items() if v is not None}
    # A dict for a nested settings model (augment={"erase": 0.5}) overrides only the keys it names.
    upd = {k: {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v for k, v in upd.items()}
    try:
        return Recipe.model_validate({**base, **upd})
    except ValidationError as e:  # an out-of-range CLI override: say which setting, not a traceback
        bad = "; ".join(f"{'.'.join(map(str, err['loc']))} = {err.get('input')!r}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"recipe {name!r}: {bad}; change the option(s) and run again") from None


def build_model(recipe: Recipe, n_classes: int):
    """The training model (float32 logits) for ``recipe``."""
    return BUILDERS[recipe.name](recipe, n_classes)


def mirror_layer(width: int):
    """Horizontal flip of ``(B, H, W, 1)`` images from built-in layers only.

    A frozen anti-identity Dense over the width axis: the saved ``.keras`` file
    loads without custom objects and converts to int8 exactly (weights 0/1).
    """
    import numpy as np

    keras, L = _layers()
    flip = L.Dense(width, use_bias=False, trainable=False, name="mirror_matrix")
    seq = keras.Sequential([L.Permute((1, 3, 2)), flip, L.Permute((1, 3, 2))], name="mirror")
    seq.build((None, width, width, 1))
    flip.set_weights([np.eye(width, dtype="float32")[::-1]])
    return seq


def zoom_matrix(size: int, scale: float):
    """``(size, size)`` bilinear resampling matrix ``R`` of a centred zoom-in by ``scale``: ``R @ X @ R.T`` is ``X``
    with its centre ``size / scale`` pixels stretched back to ``size`` (output pixel ``i`` samples source
    ``c + (i - c) / scale``, ``c`` the centre; the same warp as ``cv2.getRotationMatrix2D(c, 0, scale)``)."""
    import numpy as np

    if scale < 1.0:
        raise ValueError("zoom_matrix zooms in only (scale >= 1): a zoom-out would need pixels from outside the crop")
    c = (size - 1) / 2.0
    src = c + (np.arange(size) - c) / scale
    lo = np.clip(np.floor(src).astype(int), 0, size - 1)
    hi = np.clip(lo + 1, 0, size - 1)
    frac = src - np.floor(src)
    r = np.zeros((size, size), np.float32)
    np.add.at(r, (np.arange(size), lo), 1.0 - frac)
    np.add.at(r, (np.arange(size), hi), frac)
    return r


def zoom_layer(width: int, scale: float):
    """Centred zoom-in of ``(B, H, W, 1)`` images by ``scale`` from built-in layers only: two frozen Dense
    resamplings (width, then height) between Permutes, like ``mirror_layer``; the weights are bilinear
    coefficients in [0, 1], so the zoom quantises to int8 with sub-grey-level error."""
    keras, L = _layers()
    r = zoom_matrix(width, scale)
    cols = L.Dense(width, use_bias=False, trainable=False, name="zoom_cols")
    rows = L.Dense(width, use_bias=False, trainable=False, name="zoom_rows")
    # (B,H,W,1) -> (B,H,1,W) -> resample W -> (B,W,1,H) -> resample H -> (B,H,W,1)
    seq = keras.Sequential([L.Permute((1, 3, 2)), cols, L.Permute((3, 2, 1)), rows, L.Permute((3, 1, 2))],
                           name="zoom")
    seq.build((None, width, width, 1))
    cols.set_weights([r.T])
    rows.set_weights([r.T])
    return seq


def tta_views(x, flip: bool, zoom: float) -> list:
    """The test-time views ``export_model`` averages over, on a numpy batch ``(B, H, W, 1)``: the image, its mirror
    if ``flip``, its centred zoom-in if ``zoom`` (> 0). Training's val figures use these."""
    import numpy as np

    views = [x]
    if flip:
        views.append(x[:, :, ::-1])
    if zoom:
        r = zoom_matrix(x.shape[2], zoom)
        views.append(np.einsum("ik,bklc,jl->bijc", r, x, r).astype(x.dtype))
    return views


def export_model(model, flip_tta: bool = True, tta_zoom: float = 0.0):
    """Device model: probabilities = softmax(logits), averaged over the image, its mirror if ``flip_tta`` and
    its centred zoom-in by ``tta_zoom`` if that is > 0 (multi-view test-time augmentation in the graph).

    Each view is its own branch through the shared network (weights are stored once in the int8 file; each
    branch adds its own quantisation parameters and ops, about 35 kB for the zoom view of edgenet)."""
    keras, L = _layers()
    inp = keras.Input(model.input_shape[1:], name="face")
    probs = [L.Softmax(name="probs")(model(inp))]
    if flip_tta:
        probs.append(L.Softmax(name="probs_mirror")(model(mirror_layer(model.input_shape[2])(inp))))
    if tta_zoom:
        probs.append(L.Softmax(name="probs_zoom")(model(zoom_layer(model.input_shape[2], tta_zoom)(inp))))
    p = probs[0] if len(probs) == 1 else L.Average(name="probabilities")(probs)
    return keras.Model(inp, p, name=f"{model.name}_export")


def transfer_pruned(src, dst) -> dict[str, list[int]]:
    """Copy ``src`` weights into ``dst``, the same architecture with narrower residual inner widths.

    Structured (channel) pruning: for every narrowed block the inner channels with
    the largest BatchNorm scale |gamma| are kept (Liu et al., "Network Slimming",
    2017); the first conv's filters, that BN's vectors and the second conv's input
    slices follow. Returns the kept channel indices per (old, new) width.
    """
    import numpy as np

    old, new = src.get_weights(), dst.get_weights()
    if len(old) != len(new):
        raise ValueError("models differ in more than inner widths")
    keep: dict[tuple[int, int], np.ndarray] = {}
    for a, b in zip(old, new):  # first 1-D mismatch of a pair is the BN gamma
        if a.ndim == 1 and a.shape != b.shape and (a.shape[0], b.shape[0]) not in keep:
            keep[(a.shape[0], b.shape[0])] = np.sort(np.argsort(-np.abs(a))[: b.shape[0]])
    out = []
    for a, b in zip(old, new):
        for axis in range(a.ndim):
            if a.shape[axis] != b.shape[axis]:
                a = np.take(a, keep[(a.shape[axis], b.shape[axis])], axis=axis)
        if a.shape != b.shape:
            raise ValueError(f"cannot map weight {a.shape} onto {b.shape}")
        out.append(a)
    dst.set_weights(out)
    return {f"{k[0]}->{k[1]}": v.tolist() for k, v in keep.items()}
