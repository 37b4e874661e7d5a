"""Fixtures shared by several test modules."""

import urllib.error
import urllib.request

import pytest
from ray_head import ray_address  # noqa: F401  (a real Ray head on this machine, one per session)


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """No network: every urllib request fails as it does on a machine offline. Returns the list of the
    URLs that were tried (torchvision and tonic both download through urllib)."""
    tried: list[str] = []

    def refuse(request, *args, **kwargs):
        tried.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return tried
