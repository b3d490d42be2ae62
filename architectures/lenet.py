"""LeNet-5 encoder f and classifier head g (Baltatzis et al. 2021, Fig. 1).

Three ways to train them (see the ``tasks.nodules`` package):
    (a) f + g end to end with cross-entropy: :func:`build_classifier`;
    (b) a siamese f with the contrastive loss: :func:`build_encoder` alone, the loss forms
        the pairs inside each batch (``keras_losses.ContrastiveLoss``), so the two branches
        of the siamese network are the same model applied to every image of the batch;
    (c) f frozen and g trained on top with cross-entropy: :func:`build_classifier` with
        ``train_encoder=False`` around the encoder of (b).
"""

from __future__ import annotations

import keras
from keras import layers

ENCODER_NAME = "encoder"
HEAD_NAME = "head"
EMBEDDING_LAYER = "embedding"

# (activation, pooling) of each encoder variant.
ENCODER_VARIANTS = {
    # LeCun et al. 1998, Sec. II-B: squashing (tanh-type) units and average-pooling
    # "sub-sampling" layers S2 and S4. Baltatzis et al. 2021 base both networks "on the
    # well-established LeNet-5 [4]".
    "classic": ("tanh", "average"),
    # The common modern re-implementation: ReLU and max pooling.
    "modern": ("relu", "max"),
}
DEFAULT_VARIANT = "classic"
NATIVE_SIZE = 32
"""LeNet-5's input size (LeCun et al. 1998: 32x32), at which C5 sees a 5x5 map."""


def build_encoder(
    input_shape=(NATIVE_SIZE, NATIVE_SIZE, 1),
    *,
    variant: str = DEFAULT_VARIANT,
    embedding_dim: int = 84,
    input_scale: float = 1.0 / 255.0,
    name: str = ENCODER_NAME,
) -> keras.Model:
    """LeNet-5 feature extractor f: image -> embedding (F6, the last layer before the classifier).

    The 1998 layer sizes: C1 conv 5x5 (6 maps) -> S2 pool 2 -> C3 conv 5x5 (16 maps) -> S4 pool 2
    -> C5 (120 units) -> F6 (84 units). ``variant="classic"`` (default) has tanh units and
    average pooling, ``"modern"`` ReLU units and max pooling.

    Differences from 1998 (as in most re-implementations): C3 connects every S2 map (the 1998
    connection table is partial), S2/S4 are plain averages (1998: average times a trainable
    coefficient plus a bias, then the squashing function), units use tanh (1998:
    1.7159 tanh(2a/3)), and C5 is a dense layer over S4, which at the native 32x32 input (S4
    5x5x16) is exactly the 1998 5x5 convolution; at larger inputs it sees the whole S4 map.

    Args:
        input_shape: (H, W, C), H and W at least 16 (LeNet-5: 32x32x1).
        variant: ``"classic"`` (tanh, average pooling) or ``"modern"`` (ReLU, max pooling).
        embedding_dim: width of F6, the last layer (LeNet-5: 84).
        input_scale: the images are multiplied by this first (intensities 0..255 -> 0..1),
            so saliency maps are in the units of the input image.

    Reference:
        Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
        document recognition", Proc. IEEE 86(11), 1998, Sec. II-B and Fig. 2.

    Example:
        >>> build_encoder((32, 32, 1)).output.shape
        (None, 84)
    """
    if variant not in ENCODER_VARIANTS:
        raise ValueError(f"build_encoder: variant must be one of {sorted(ENCODER_VARIANTS)}; received {variant!r}")
    if min(input_shape[:2]) < 16:
        raise ValueError(f"build_encoder: input_shape must be at least 16x16; received {input_shape}")
    activation, pooling = ENCODER_VARIANTS[variant]
    pool = layers.AveragePooling2D if pooling == "average" else layers.MaxPooling2D
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(input_scale, name="scale")(inputs)
    x = layers.Conv2D(6, 5, activation=activation, name="conv1")(x)  # C1
    x = pool(2, name="pool1")(x)  # S2
    x = layers.Conv2D(16, 5, activation=activation, name="conv2")(x)  # C3
    x = pool(2, name="pool2")(x)  # S4
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation=activation, name="fc1")(x)  # C5
    x = layers.Dense(embedding_dim, activation=activation, name=EMBEDDING_LAYER)(x)  # F6
    return keras.Model(inputs, x, name=name)


# The head's output layer. "sigmoid": one logit z and f(X) = sigmoid(z), the output Eq. (1) of
# Baltatzis et al. 2021 trains ("f(X) in (0, 1)", binary cross-entropy); the model still returns
# the two columns (sigmoid(-z), sigmoid(z)) = (1 - f(X), f(X)), built from Keras layers only (so
# a saved model loads without this module), so that one sparse cross-entropy, the metrics and the
# predictors serve both heads (-log of the label's column is Eq. (1) exactly). "softmax2": two
# logits and a softmax (two weight vectors; the same loss, another parameterisation under Adam).
HEAD_OUTPUTS = ("sigmoid", "softmax2")
# The dense layer of the head whose outputs are the class scores (pre-activation).
HEAD_DENSE = {"sigmoid": "logit", "softmax2": "probs"}


# Initial weights of the head g, a single dense layer (the paper does not state them):
# "glorot" is Keras's default (uniform, limit sqrt(6 / (fan_in + fan_out))); "zeros" starts g
# at the uniform prediction, as logistic regression does (no symmetry to break in one layer).
HEAD_INITS = {"glorot": "glorot_uniform", "zeros": "zeros"}


def build_head(
    embedding_dim: int = 84,
    num_classes: int = 2,
    name: str = HEAD_NAME,
    *,
    init: str = "glorot",
    output: str = "softmax2",
) -> keras.Model:
    """Classifier g: embedding -> class probabilities, its weights started by ``init`` (a key
    of :data:`HEAD_INITS`; the bias always starts at 0).

    ``output`` (:data:`HEAD_OUTPUTS`): ``"softmax2"`` (``num_classes`` logits, softmax; the
    dense layer is named ``probs``) or ``"sigmoid"`` (two classes only: one logit ``logit``,
    returned as (sigmoid(-logit), sigmoid(logit)))."""
    if init not in HEAD_INITS:
        raise ValueError(f"head init must be one of {', '.join(HEAD_INITS)}; received {init!r}")
    if output not in HEAD_OUTPUTS:
        raise ValueError(f"head output must be one of {', '.join(HEAD_OUTPUTS)}; received {output!r}")
    inputs = keras.Input((embedding_dim,), name="embedding_in")
    if output == "sigmoid":
        if num_classes != 2:
            raise ValueError(f"a sigmoid head has two classes; received num_classes={num_classes}")
        logit = layers.Dense(1, kernel_initializer=HEAD_INITS[init], name="logit")(inputs)
        benign = layers.Activation("sigmoid", name="p_benign")(layers.Rescaling(-1.0, name="minus_logit")(logit))
        malignant = layers.Activation("sigmoid", name="p_malignant")(logit)
        outputs = layers.Concatenate(name="probs_pair")([benign, malignant])
    else:
        outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer=HEAD_INITS[init], name="probs")(inputs)
    return keras.Model(inputs, outputs, name=name)


def class_scores(model: keras.Model, images):
    """The class scores (pre-activation outputs, Simonyan et al. 2014's S_c) of a classifier
    from :func:`build_classifier`: ``(n, 1)`` logits of a sigmoid head (the malignant class's
    score; the other class's is its negative), ``(n, K)`` of a softmax head."""
    head = model.get_layer(HEAD_NAME)
    names = [layer.name for layer in head.layers]
    dense = next((head.get_layer(n) for n in HEAD_DENSE.values() if n in names), None)
    if dense is None:
        raise ValueError(f"Expected a head with a {' or '.join(HEAD_DENSE.values())!r} layer; head has {names}")
    features = model.get_layer(ENCODER_NAME)(images, training=False)
    return keras.ops.matmul(features, dense.kernel) + dense.bias


def build_classifier(
    encoder: keras.Model | None = None,
    *,
    input_shape=(NATIVE_SIZE, NATIVE_SIZE, 1),
    variant: str = DEFAULT_VARIANT,
    num_classes: int = 2,
    train_encoder: bool = True,
    head_init: str = "glorot",
    head_output: str = "softmax2",
    name: str = "lenet5",
) -> keras.Model:
    """g(f(x)): a model holding the encoder and the head as the nested models
    ``"encoder"`` and ``"head"``. ``train_encoder=False`` freezes f (training mode (c)).
    Without ``encoder`` a new one of ``variant`` is built for ``input_shape``; ``head_init``
    starts g and ``head_output`` chooses its output layer (:func:`build_head`)."""
    if encoder is None:
        encoder = build_encoder(input_shape, variant=variant)
    encoder.trainable = train_encoder
    head = build_head(encoder.output.shape[-1], num_classes, init=head_init, output=head_output)
    inputs = keras.Input(encoder.input.shape[1:], name="image")
    return keras.Model(inputs, head(encoder(inputs)), name=name)


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder f of a classifier from :func:`build_classifier`, or ``model`` itself if
    it is an encoder (for embeddings, Fig. 2)."""
    names = [layer.name for layer in model.layers]
    if ENCODER_NAME in names:
        return model.get_layer(ENCODER_NAME)
    if EMBEDDING_LAYER in names:
        return model
    raise ValueError(
        f"Expected a LeNet-5 classifier with a nested '{ENCODER_NAME}' model or an encoder with an "
        f"'{EMBEDDING_LAYER}' layer; model {model.name!r} has layers {names}"
    )
