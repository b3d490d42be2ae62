"""LeNet-5 encoder f and classifier head g (Baltatzis et al. 2021, Fig. 1).

Three ways to train them (see ``tasks/nodules.py``):
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


def build_encoder(
    input_shape=(64, 64, 1),
    *,
    embedding_dim: int = 84,
    activation: str = "relu",
    input_scale: float = 1.0 / 255.0,
    name: str = ENCODER_NAME,
) -> keras.Model:
    """LeNet-5 feature extractor f: image -> embedding (the last layer before the classifier).

    conv 5x5 (6) -> max-pool 2 -> conv 5x5 (16) -> max-pool 2 -> dense 120 -> dense 84.

    Args:
        input_shape: (H, W, C), H and W at least 16.
        embedding_dim: width of the last layer (LeNet-5: 84).
        activation: hidden activation (default relu).
        input_scale: the images are multiplied by this first (intensities 0..255 -> 0..1),
            so saliency maps are in the units of the input image.

    Reference:
        Y. LeCun et al., "Gradient-based learning applied to document recognition", 1998.
    """
    if min(input_shape[:2]) < 16:
        raise ValueError(f"build_encoder: input_shape must be at least 16x16; received {input_shape}")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(input_scale, name="scale")(inputs)
    x = layers.Conv2D(6, 5, activation=activation, name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, activation=activation, name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation=activation, name="fc1")(x)
    x = layers.Dense(embedding_dim, activation=activation, name=EMBEDDING_LAYER)(x)
    return keras.Model(inputs, x, name=name)


def build_head(embedding_dim: int = 84, num_classes: int = 2, name: str = HEAD_NAME) -> keras.Model:
    """Classifier g: embedding -> class probabilities (softmax)."""
    inputs = keras.Input((embedding_dim,), name="embedding_in")
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(inputs)
    return keras.Model(inputs, outputs, name=name)


def build_classifier(
    encoder: keras.Model | None = None,
    *,
    input_shape=(64, 64, 1),
    num_classes: int = 2,
    train_encoder: bool = True,
    name: str = "lenet5",
) -> keras.Model:
    """g(f(x)): a model holding the encoder and the head as the nested models
    ``"encoder"`` and ``"head"``. ``train_encoder=False`` freezes f (training mode (c))."""
    if encoder is None:
        encoder = build_encoder(input_shape)
    encoder.trainable = train_encoder
    head = build_head(encoder.output.shape[-1], num_classes)
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
