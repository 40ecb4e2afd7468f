"""Datasets: real data from Debian packages or user-given directories, verified."""

from compress.data.fashion_mnist import (
    DataNotFoundError,
    FashionMNIST,
    load_fashion_mnist,
)

__all__ = ["DataNotFoundError", "FashionMNIST", "load_fashion_mnist"]
