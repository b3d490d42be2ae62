"""2D U-Net (Ronneberger et al. 2015), one builder for every segmentation task."""

from __future__ import annotations

import keras
from keras import layers


def conv_block(x, filters: int, *, batch_norm: bool, bn_momentum: float, init: dict, name: str):
    """Two 3x3 convolutions, each followed by optional batch norm and ReLU."""
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}", **init)(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def initializers(kernel_stddev: float | None = None, bias_value: float = 0.0) -> dict:
    """Kernel/bias initializers: He normal by default, or truncated normal(0, sd) and a
    constant bias (the GLF paper: sd 0.05, bias 0.1)."""
    kernel = "he_normal" if kernel_stddev is None else keras.initializers.TruncatedNormal(0.0, kernel_stddev)
    return {"kernel_initializer": kernel, "bias_initializer": keras.initializers.Constant(bias_value)}


def build_unet(
    input_shape=(128, 128, 1),
    *,
    depth: int = 4,
    base_filters: int = 32,
    batch_norm: bool = True,
    bn_momentum: float = 0.99,
    dropout: float = 0.0,
    out_channels: int = 1,
    kernel_stddev: float | None = None,
    bias_value: float = 0.0,
    name: str = "unet",
) -> keras.Model:
    """A 2D U-Net with a sigmoid output.

    Args:
        input_shape: (H, W, C); H and W must be divisible by 2**depth.
        depth: number of down-sampling steps (default 4).
        base_filters: filters of the first level, doubled at each level (default 32).
        batch_norm: batch normalization after each convolution (default True).
        bn_momentum: moving-average decay of batch norm (Keras default 0.99; the GLF
            paper uses 0.9).
        dropout: dropout rate at the bottleneck (default 0; the GLF paper uses 0.6).
        out_channels: output channels, each a sigmoid probability (default 1).
        kernel_stddev, bias_value: see :func:`initializers`.

    Reference:
        O. Ronneberger, P. Fischer, T. Brox, "U-Net: convolutional networks for biomedical
        image segmentation", MICCAI 2015.
    """
    h, w = input_shape[0], input_shape[1]
    factor = 2**depth
    if (h is not None and h % factor) or (w is not None and w % factor):
        raise ValueError(f"input_shape {input_shape}: height and width must be divisible by 2**depth = {factor}")
    init = initializers(kernel_stddev, bias_value)
    opts = {"batch_norm": batch_norm, "bn_momentum": bn_momentum, "init": init}
    inputs = keras.Input(shape=input_shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, name=f"enc{level}", **opts)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv_block(x, base_filters * 2**depth, name="bottleneck", **opts)
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, name=f"up{level}", **init)(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = conv_block(x, base_filters * 2**level, name=f"dec{level}", **opts)
    outputs = layers.Conv2D(out_channels, 1, activation="sigmoid", dtype="float32", name="mask", **init)(x)
    return keras.Model(inputs, outputs, name=name)
