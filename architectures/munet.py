"""mU-Net (Seo et al., IEEE TMI 2020): a U-Net whose skip connections carry a residual path.

What was taken from where
-------------------------
From the mU-Net paper (H. Seo, C. Huang, M. Bassenne, R. Xiao, L. Xing, "Modified U-Net (mU-Net)
with incorporation of object-dependent high level features for improved liver and liver-tumor
segmentation in CT images", IEEE TMI 39(5):1316-1325, 2020; arXiv:1911.00140), abstract and
architecture description:

* The encoder, bottleneck and decoder are those of the U-Net (two 3x3 convolutions per level,
  2x2 max pooling, 2x2 stride-2 deconvolution on the way up, concatenation with the skip).
* "A residual path with deconvolution and activation operations [added] to the skip connection
  ... to avoid duplication of low resolution information of features": at level ``l`` the
  encoder features ``f_l`` are pooled (the information the deeper levels, and hence the decoder,
  already receive), brought back up by a 2x2 stride-2 deconvolution and a ReLU, and subtracted
  from ``f_l``. The skip therefore carries ``f_l - ReLU(deconv(pool(f_l)))``: the
  high-resolution (edge) part of the features, not a second copy of the low-resolution part.
* "In the case of small object inputs, features in the skip connection are not incorporated with
  features in the residual path": this is what the subtraction gives by itself. An object
  smaller than the pooling window hardly survives pooling, the residual path is ~0 there, and the
  skip passes its features unchanged.
* "Additional convolution layers in the skip connection in order to extract high level global
  features of small object inputs as well as high level features of high resolution edge
  information of large object inputs": 3x3 convolution (+ batch norm + ReLU) layers on the skip
  after the subtraction.

What had to be guessed (the published text does not fix it, or we could not check it)
-----------------------------------------------------------------------------------------
* The number of convolutions in each skip connection. We use more convolutions where the skip
  is shallower, ``depth - l`` at level ``l`` (level 0 = full resolution gets ``depth``, the
  deepest skip gets 1), so every skip reaches a comparable depth of abstraction before it meets
  the decoder. Override with ``skip_convs``.
* The channel count of the residual-path deconvolution (equal to the level's filters, so the
  subtraction is defined) and where dropout sits (after the bottleneck, as in our U-Net).

From the GLF paper (Seo, Bassenne, Xing, IEEE TMI 40(2), 2021, Sec. III, training details),
the defaults: weights from a truncated normal (mean 0, sd 0.05), biases 0.1, batch-norm
moving-average decay 0.9, dropout 0.6 (applied here as Keras ``Dropout(rate=0.6)``; the paper's
TensorFlow-1 code may have meant a keep probability of 0.6: pass ``dropout=0.4`` for that
reading), Adam at 1e-4 (set by the task, not here), output threshold 0.5 (evaluation).
"""

from __future__ import annotations

import keras
from keras import layers

from architectures.unet import conv_block, initializers

# GLF paper, Sec. III: training details used as this builder's defaults.
GLF_KERNEL_STDDEV = 0.05  # truncated normal sd of the weights
GLF_BIAS_VALUE = 0.1  # initial bias
GLF_BN_MOMENTUM = 0.9  # batch-norm moving-average decay
GLF_DROPOUT = 0.6  # dropout
# The output layer. Neither the GLF paper nor (in what we could check) the mU-Net paper states
# it. "sigmoid": one channel, sigmoid. "softmax2": two channels (background, tumour) with a
# pixel-wise softmax, as the original U-Net (Ronneberger et al. 2015) ends; the model returns
# the tumour channel, so losses and metrics see the same (batch, h, w, 1) probability.
OUTPUT_LAYERS = ("sigmoid", "softmax2")


def default_skip_convs(depth: int) -> list[int]:
    """Convolutions in each skip connection, level 0 (full resolution) first: depth, ..., 1."""
    return [depth - level for level in range(depth)]


def residual_skip(
    features,
    pooled,
    filters: int,
    n_convs: int,
    *,
    batch_norm: bool,
    bn_momentum: float,
    init: dict,
    name: str,
):
    """The mU-Net skip connection of one level.

    ``features - ReLU(deconv(pooled))`` followed by ``n_convs`` 3x3 convolutions, where
    ``pooled`` (batch, h/2, w/2, filters) is the encoder's max pooling of ``features``: what
    the deeper levels, and through them the decoder, already see of this level.
    """
    # (batch, h, w, filters): that low-resolution content brought back to this level
    low = layers.Conv2DTranspose(filters, 2, strides=2, name=f"{name}_deconv", **init)(pooled)
    low = layers.Activation("relu", name=f"{name}_deconv_relu")(low)
    x = layers.Subtract(name=f"{name}_residual")([features, low])
    for i in range(1, n_convs + 1):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}", **init
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_munet(
    input_shape=(128, 128, 1),
    *,
    depth: int = 4,
    base_filters: int = 32,
    batch_norm: bool = True,
    bn_momentum: float = GLF_BN_MOMENTUM,
    dropout: float = GLF_DROPOUT,
    out_channels: int = 1,
    kernel_stddev: float | None = GLF_KERNEL_STDDEV,
    bias_value: float = GLF_BIAS_VALUE,
    skip_convs: list[int] | None = None,
    output: str = "sigmoid",
    name: str = "munet",
) -> keras.Model:
    """A 2D mU-Net whose output is the tumour probability (sigmoid or 2-channel softmax).

    Args:
        input_shape: (H, W, C); H and W must be divisible by 2**depth.
        depth: number of down-sampling steps (default 4).
        base_filters: filters of the first level, doubled at each level (default 32).
        batch_norm: batch normalization after each convolution (default True).
        bn_momentum: batch-norm moving-average decay (default 0.9, the GLF paper).
        dropout: dropout rate after the bottleneck (default 0.6, the GLF paper).
        out_channels: sigmoid output channels (default 1).
        kernel_stddev: sd of the truncated-normal kernel initializer (default 0.05, the GLF
            paper); None for He normal.
        bias_value: initial bias (default 0.1, the GLF paper).
        skip_convs: number of 3x3 convolutions in each skip connection, level 0 first
            (default ``[depth, depth-1, ..., 1]``, our reading of the mU-Net paper).
        output: "sigmoid" (default: ``out_channels`` sigmoid channels) or "softmax2" (a
            1x1 convolution to 2 channels, background and tumour, a pixel-wise softmax, and
            the tumour channel returned: (batch, h, w, 1); needs ``out_channels=1``). Not
            stated in the GLF paper. With the paper's constant bias 0.1 the sigmoid starts
            every pixel near sigmoid(0.1) = 0.525, while under the softmax the equal biases
            cancel and the start is 0.5 with a spread (docs/lung.md, ledger).

    Reference:
        H. Seo et al., "Modified U-Net (mU-Net) with incorporation of object-dependent high
        level features for improved liver and liver-tumor segmentation in CT images",
        IEEE TMI 39(5), 2020. See the module docstring for what is taken from the paper and
        what is our guess.

    Example:
        >>> model = build_munet((32, 32, 1), depth=2, base_filters=4)
        >>> model.output_shape
        (None, 32, 32, 1)
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1; received {depth}")
    h, w = input_shape[0], input_shape[1]
    factor = 2**depth
    if (h is not None and h % factor) or (w is not None and w % factor):
        raise ValueError(
            f"input_shape {tuple(input_shape)}: height and width must be divisible by 2**depth = {factor}"
        )
    skip_convs = default_skip_convs(depth) if skip_convs is None else [int(n) for n in skip_convs]
    if len(skip_convs) != depth or any(n < 0 for n in skip_convs):
        raise ValueError(
            f"skip_convs must list {depth} non-negative numbers (one per level); received {skip_convs}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received {dropout}")
    if output not in OUTPUT_LAYERS:
        raise ValueError(f"output must be one of {OUTPUT_LAYERS}; received {output!r}")
    if output == "softmax2" and out_channels != 1:
        raise ValueError(
            f"output='softmax2' gives one tumour channel; received out_channels={out_channels}"
        )
    init = initializers(kernel_stddev, bias_value)
    opts = {"batch_norm": batch_norm, "bn_momentum": bn_momentum, "init": init}

    inputs = keras.Input(shape=input_shape, name="image")
    x, skips, pooled = inputs, [], []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, name=f"enc{level}", **opts)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
        pooled.append(x)
    x = conv_block(x, base_filters * 2**depth, name="bottleneck", **opts)
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        skip = residual_skip(
            skips[level], pooled[level], filters, skip_convs[level], name=f"skip{level}", **opts
        )
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}", **init)(x)
        x = layers.Concatenate(name=f"merge{level}")([x, skip])
        x = conv_block(x, filters, name=f"dec{level}", **opts)
    if output == "softmax2":
        # (batch, h, w, 2): background and tumour scores; softmax over the 2 channels
        logits = layers.Conv2D(2, 1, dtype="float32", name="mask_logits", **init)(x)
        probs = layers.Softmax(axis=-1, dtype="float32", name="mask_softmax")(logits)
        outputs = probs[..., 1:]  # (batch, h, w, 1): the tumour probability
    else:
        outputs = layers.Conv2D(
            out_channels, 1, activation="sigmoid", dtype="float32", name="mask", **init
        )(x)
    return keras.Model(inputs, outputs, name=name)
