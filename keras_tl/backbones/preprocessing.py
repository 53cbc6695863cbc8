"""Image preprocessing as a layer, so a built model takes raw 0-255 pixels."""

from __future__ import annotations

import keras
from keras import ops

# The constants of keras.applications.imagenet_utils.preprocess_input.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

MODES = ("caffe", "tf", "torch", "unit", "none")


@keras.saving.register_keras_serializable(package="keras_tl")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to a backbone's expected input.

    The same arithmetic as `keras.applications.<family>.preprocess_input`,
    inside the graph, so exported models take plain pixels.

    Args:
        mode: `"caffe"` (RGB to BGR, minus the ImageNet mean; ResNet, VGG),
            `"tf"` (scale to [-1, 1]; MobileNet, Inception, Xception),
            `"torch"` (scale to [0, 1], then ImageNet mean and std; DenseNet),
            `"unit"` (scale to [0, 1]; TF-Hub image modules) or `"none"`.
        **kwargs: standard layer arguments.

    Example:

    >>> layer = keras_tl.ImagePreprocessing("tf")
    >>> layer(np.full((1, 2, 2, 3), 255.0)).numpy().max()
    1.0
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"Unknown preprocessing mode. Expected one of {MODES}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, self.compute_dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, self.compute_dtype)
            return ops.flip(x, axis=-1) - mean
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
