"""stviz: where and when a video action recognition model looked, drawn and measured."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stviz")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
