"""VGG-16 classifier with an optional loss-estimator head (Narayanaswamy et al. 2021).

The backbone is ``keras.applications.VGG16`` (``width=1``) or, for tests and CPU runs, the same
13-convolution topology with ``width`` times the filters and the same layer names. The model
takes RGB images in [0, 255]; a ``Normalization`` layer subtracts the ImageNet mean, and with
ImageNet weights the first convolution's input channels are reversed once at build time, so
the Caffe-style BGR weights see the channels they were trained on without a custom layer.

Outputs:
    vanilla:        softmax probabilities (batch, C)            (layer ``probs``)
    loss estimator: [probabilities, estimated loss] (batch, C+1) (layer ``probs_and_loss``)
Both models have a ``logits`` layer, which ODIN uses for temperature scaling.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# per-channel sd of ImageNet in [0, 255] (the torchvision constants x 255); init="he" divides by it
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
INITS = ("glorot", "he")
NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
# conv layers 4, 7, 10 and 13 (the last convolution of blocks 2-5), Narayanaswamy et al. Sec. 3
ESTIMATOR_TAPS = ("block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
FC_UNITS = 4096  # VGG-16's fc1 and fc2 (Simonyan and Zisserman 2015)
HEADS = ("fc", "gap")


def imagenet_weights_path() -> Path | None:
    """The no-top VGG-16 ImageNet weights if Keras has them cached (``~/.keras/models``), else None."""
    base = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    for folder in (base / "models", Path("/tmp/.keras/models")):
        if (folder / NOTOP_FILE).is_file():
            return folder / NOTOP_FILE
    return None


def resolve_weights(weights: str | None) -> str | None:
    """``imagenet`` / ``none`` / a path -> a weights file path or None (random init).

    ``imagenet`` without a cached file prints a message and falls back to random init rather
    than attempting a download (the machines this runs on are often offline).
    """
    if weights is None or str(weights).lower() in ("none", ""):
        return None
    if str(weights).lower() == "imagenet":
        path = imagenet_weights_path()
        if path is None:
            print(
                f"ImageNet weights for VGG-16 not found ({NOTOP_FILE} in ~/.keras/models); no download "
                "is attempted: starting from random initialization. Place the file there, or pass "
                "--weights PATH, to start from ImageNet.",
                flush=True,
            )
            return None
        return str(path)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"--weights {weights}: no such file (expected imagenet, none or a VGG-16 no-top .h5 weights file)"
        )
    return str(path)


def _backbone(
    input_shape,
    width: float,
    weights_path: str | None,
    l2: float,
    init: str = "glorot",
    batch_norm: bool = False,
) -> keras.Model:
    reg = keras.regularizers.L2(l2) if l2 else None
    kernel_init = "he_normal" if init == "he" else "glorot_uniform"
    if width == 1.0 and not batch_norm:
        base = keras.applications.VGG16(include_top=False, weights=None, input_shape=input_shape)
        if weights_path:
            base.load_weights(weights_path)
            kernel, bias = base.get_layer("block1_conv1").get_weights()
            base.get_layer("block1_conv1").set_weights([kernel[:, :, ::-1, :], bias])  # BGR -> RGB
        if reg is None and init == "glorot":
            return base

        def add_reg(layer):
            config = layer.get_config()
            if isinstance(layer, layers.Conv2D):
                if reg is not None:
                    config["kernel_regularizer"] = keras.regularizers.serialize(reg)
                config["kernel_initializer"] = kernel_init
            return layer.__class__.from_config(config)

        clone = keras.models.clone_model(base, clone_function=add_reg)
        if init == "glorot":  # "he" keeps the clone's fresh He-normal kernels
            clone.set_weights(base.get_weights())
        return clone
    inputs = keras.Input(input_shape)
    x = inputs
    for b, (filters, convs) in enumerate(BLOCKS, start=1):
        for c in range(1, convs + 1):
            name = f"block{b}_conv{c}"
            conv = dict(
                filters=max(1, int(round(filters * width))),
                kernel_size=3,
                padding="same",
                kernel_initializer=kernel_init,
                kernel_regularizer=reg,
            )
            if batch_norm:  # VGG-16-BN order, conv -> BN -> ReLU; the ReLU keeps the tap's name
                x = layers.Conv2D(**conv, use_bias=False, name=f"{name}_linear")(x)
                x = layers.BatchNormalization(name=f"{name}_bn")(x)
                x = layers.ReLU(name=name)(x)
            else:
                x = layers.Conv2D(**conv, activation="relu", name=name)(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    base = keras.Model(inputs, x, name="vgg16")
    if weights_path:
        raise ValueError(
            f"weights {weights_path} are for the full VGG-16; width must be 1 to load them (received {width})"
        )
    return base


def build_vgg16_classifier(
    input_shape=(224, 224, 3),
    num_classes: int = 5,
    *,
    loss_estimator: bool = False,
    weights: str | None = None,
    width: float = 1.0,
    dropout: float = 0.4,
    l2: float = 0.0,
    estimator_units: int = 128,
    head: str = "fc",
    init: str = "glorot",
    batch_norm: bool = False,
    name: str | None = None,
) -> keras.Model:
    """VGG-16 -> classifier head -> Dense(C) logits -> softmax.

    Args:
        input_shape: (H, W, 3), H and W >= 32 (five 2x poolings).
        num_classes: C.
        loss_estimator: add the head of Narayanaswamy et al. 2021 (Sec. 3): the activations of
            conv layers 4, 7, 10, 13 -> global average pooling -> Dense(estimator_units, ReLU)
            each -> concatenate -> Dense(1) = estimated loss, output after the probabilities.
            The pooling is not in the paper's text (it names only the linear layers); it is
            Yoo and Kweon 2019's, whose loss-prediction module the head follows.
        weights: ``"imagenet"``, ``"none"``/None or a path (see :func:`resolve_weights`).
        width: filter multiplier (1 = VGG-16; e.g. 0.25 for CPU runs and tests).
        dropout: before the classifier (paper: 0.4).
        l2: coefficient of an L2 penalty on every kernel (0 = none). For PyTorch-style Adam
            weight decay ``wd`` use ``l2 = wd / 2`` (gradient ``wd * w``).
        estimator_units: width of each tap's Dense layer (paper: 128).
        head: ``"fc"`` (default): VGG-16's own classifier, flatten -> Dense(4096 x width, ReLU)
            -> dropout -> Dense(4096 x width, ReLU) -> dropout (the paper "adopted a VGG-16
            network"; these two layers start from random weights, the no-top ImageNet file has
            none); ``"gap"``: global average pooling -> dropout, a lighter head.
        init: random initialization when no weights are loaded. ``"glorot"`` (default): Keras'
            Glorot-uniform kernels on [0, 255] inputs minus the ImageNet mean, as
            ``keras.applications.VGG16``; ``"he"``: He-normal kernels (He et al. 2015, the
            initialization that lets a ReLU network of VGG-16's depth train from scratch) on every
            layer, and inputs also divided by the ImageNet sd so the signal starts at unit
            variance. ``"he"`` with loaded weights is an error (the weights expect unscaled input).
        batch_norm: VGG-16-BN (conv -> batch normalization -> ReLU in all 13 convolutions, as
            torchvision's ``vgg16_bn``); for training from scratch. The estimator taps keep their
            names (the ReLU after each tapped convolution). Not with loaded VGG-16 weights.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}; received {head!r}")
    if input_shape[0] < 32 or input_shape[1] < 32:
        raise ValueError(
            f"VGG-16 needs inputs of at least 32x32; received input_shape={tuple(input_shape)}"
        )
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; received {init!r}")
    weights_path = resolve_weights(weights)
    if init == "he" and weights_path:
        raise ValueError(
            f"init='he' is for random initialization, but weights {weights_path} were loaded "
            "(they expect inputs minus the ImageNet mean, not divided by its sd); use init='glorot'"
        )
    reg = keras.regularizers.L2(l2) if l2 else None
    kernel_init = "he_normal" if init == "he" else "glorot_uniform"
    if batch_norm and weights_path:
        raise ValueError(
            f"batch_norm=True builds VGG-16-BN, which the VGG-16 weights {weights_path} do not fit"
        )
    base = _backbone(tuple(input_shape), width, weights_path, l2, init, batch_norm)
    inputs = keras.Input(tuple(input_shape), name="image")
    variance = [s**2 for s in IMAGENET_STD_RGB] if init == "he" else [1.0, 1.0, 1.0]
    x = layers.Normalization(mean=list(IMAGENET_MEAN_RGB), variance=variance, name="imagenet_mean")(
        inputs
    )
    taps = ESTIMATOR_TAPS if loss_estimator else ()
    feature_model = keras.Model(
        base.input, [base.output, *[base.get_layer(t).output for t in taps]], name="vgg16"
    )
    outs = feature_model(x)
    features = outs[0]
    if head == "gap":
        h = layers.GlobalAveragePooling2D(name="gap")(features)
        h = layers.Dropout(dropout, name="dropout")(h)
    else:
        h = layers.Flatten(name="flatten")(features)
        units = max(1, int(round(FC_UNITS * width)))
        for k in (1, 2):
            h = layers.Dense(
                units,
                activation="relu",
                kernel_initializer=kernel_init,
                kernel_regularizer=reg,
                name=f"fc{k}",
            )(h)
            h = layers.Dropout(dropout, name=f"dropout{k}")(h)
    logits = layers.Dense(
        num_classes, kernel_initializer=kernel_init, kernel_regularizer=reg, name="logits"
    )(h)
    probs = layers.Activation("softmax", name="probs")(logits)
    if not loss_estimator:
        return keras.Model(inputs, probs, name=name or "vgg16_vanilla")
    branches = []
    for tap, act in zip(taps, outs[1:], strict=True):
        g = layers.GlobalAveragePooling2D(name=f"lossest_gap_{tap}")(act)
        branches.append(
            layers.Dense(
                estimator_units,
                activation="relu",
                kernel_initializer=kernel_init,
                kernel_regularizer=reg,
                name=f"lossest_fc_{tap}",
            )(g)
        )
    lhat = layers.Dense(
        1, kernel_initializer=kernel_init, kernel_regularizer=reg, name="loss_estimate"
    )(layers.Concatenate(name="lossest_concat")(branches))
    out = layers.Concatenate(name="probs_and_loss")([probs, lhat])
    return keras.Model(inputs, out, name=name or "vgg16_loss_estimator")


def logits_model(model: keras.Model) -> keras.Model:
    """The sub-model from the image to the ``logits`` layer (for ODIN)."""
    return keras.Model(model.inputs, model.get_layer("logits").output)


def probs_model(model: keras.Model) -> keras.Model:
    return keras.Model(model.inputs, model.get_layer("probs").output)
