"""The exceptions of mask_rcnn_burn. What goes wrong with an input (an image, a checkpoint, a config, a device, a
file) is an :class:`Error`, each kind also the built-in exception Python code would catch for it (a bad image is a
``ValueError``, an unreadable file an ``OSError``); an argument out of its range (a device name, a precision, a
score threshold, a stream count) is a plain ``ValueError``, and one of the wrong type a ``TypeError``, as Python's
own functions raise them. Messages are one line, as the ``infer`` binary prints them."""


class Error(Exception):
    """Base class of every error raised by mask_rcnn_burn."""


class ImageError(Error, ValueError):
    """An image that cannot be decoded or used: corrupt, truncated, too large, or an array of the wrong shape."""


class WeightsError(Error, ValueError):
    """A checkpoint that does not fit the model: missing or unexpected tensors, wrong shapes, corrupt file."""


class ConfigError(Error, ValueError):
    """A model config that cannot be used: unknown name, invalid TOML, impossible values."""


class DeviceError(Error, RuntimeError):
    """No such device (no GPU adapter, an adapter index past the last), or the device failed while running."""


class DatasetError(Error, ValueError):
    """A dataset's inputs or annotations that cannot be used."""


class FileError(Error, OSError):
    """A file that cannot be read or written (missing, a folder, no permission)."""


__all__ = ["Error", "ImageError", "WeightsError", "ConfigError", "DeviceError", "DatasetError", "FileError"]
