"""Every pytest run of this suite (unit tests and the gate) has no network at all.

pyproject.toml's addopts pass pytest-socket's ``--disable-socket`` (Unix sockets
stay allowed for local IPC), so a pair or a test that reaches for the network
fails instead of quietly downloading: the gate passing is the proof that the
default tiers run offline.
"""

import socket
import urllib.request

import pytest
from pytest_socket import SocketBlockedError


def test_sockets_are_refused():
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_a_download_attempt_fails_fast():
    """Refused by pytest-socket itself (not a closed port's connection error, which a machine with
    the network would give as well)."""
    with pytest.raises(SocketBlockedError):
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)


def test_the_gate_runs_under_the_same_options(pytestconfig):
    addopts = pytestconfig.getini("addopts")
    assert "--disable-socket" in addopts
    assert pytestconfig.getoption("disable_socket")
