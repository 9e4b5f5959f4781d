"""Deliberation tests keep uploaded photos in a folder of their own, to look into."""

from __future__ import annotations

import pytest


@pytest.fixture
def uploads(tmp_path):
    return tmp_path / "uploads"


@pytest.fixture
def app_config(app_config, uploads):
    return dict(app_config, UPLOAD_DIR=str(uploads))
