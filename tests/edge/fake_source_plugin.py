"""A source plugin loaded by the registry test through its "module:function" path."""

from edge.sources.files import ImageFolderSource


def open_pattern(spec, *, config_key="camera.source", folder=None):
    return ImageFolderSource(folder, config_key=config_key)
