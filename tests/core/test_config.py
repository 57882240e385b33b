"""Settings: .env.example documents every option; production refuses dev secrets and the dev node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from boltgate.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting():
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^# BOLTGATE_([A-Z0-9_]+)=", text, flags=re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_env_example_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_env_example.py"), "--check"])
    assert result.returncode == 0, "run scripts/gen_env_example.py"


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("BOLTGATE_PORT", "9000")
    monkeypatch.setenv("BOLTGATE_RATE_PROVIDERS", "kraken, coinbase")
    monkeypatch.setenv("BOLTGATE_FIXED_RATES", "USD:50000,eur:45000.5")
    settings = Settings()
    assert settings.port == 9000
    assert settings.rate_providers == ["kraken", "coinbase"]
    assert str(settings.fixed_rates["EUR"]) == "45000.5"


def test_invalid_setting_is_rejected(monkeypatch):
    monkeypatch.setenv("BOLTGATE_PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()


def test_dev_defaults():
    settings = Settings(_env_file=None)
    assert settings.mode == "dev"
    assert settings.rate_providers == ["fixed"]
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    settings.check_production()  # dev mode: no complaints


def test_production_refuses_dev_secret_and_dev_node():
    settings = Settings(_env_file=None, mode="production")
    assert settings.rate_providers == ["coinbase", "kraken", "coingecko"]
    with pytest.raises(ConfigError) as info:
        settings.check_production()
    message = str(info.value)
    assert "BOLTGATE_SECRET_KEY" in message
    assert "dev node" in message


def test_production_refuses_fixed_rates():
    settings = Settings(_env_file=None, mode="production", rate_providers=["fixed"], secret_key="s" * 40)
    with pytest.raises(ConfigError, match="fixed rate provider"):
        settings.check_production()


def test_serve_refuses_to_start_in_production_with_dev_defaults(tmp_path):
    env = {**os.environ, "BOLTGATE_MODE": "production", "BOLTGATE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "boltgate", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refuses to start in production mode" in result.stderr


def test_production_refuses_a_plain_http_shopify_api():
    settings = Settings(
        _env_file=None, mode="production", secret_key="s" * 40, shopify_api_base="http://127.0.0.1:9/{shop}"
    )
    with pytest.raises(ConfigError, match="BOLTGATE_SHOPIFY_API_BASE must be an https"):
        settings.check_production()


@pytest.mark.parametrize("base", ["https://example.com", "ftp://{shop}", "https://{shop} x"])
def test_shopify_api_base_must_name_the_shop(base):
    with pytest.raises(ValidationError):
        Settings(_env_file=None, shopify_api_base=base)
