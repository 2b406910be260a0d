"""compose.yaml and the Dockerfile agree with the settings object (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from retriever.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_services_are_the_database_and_the_api(compose):
    assert set(compose["services"]) == {"db", "api"}


def test_database_is_pgvector_with_a_pinned_major_a_healthcheck_and_a_named_volume(compose):
    db = compose["services"]["db"]
    assert re.fullmatch(r"pgvector/pgvector:pg1[5-9]", db["image"])
    assert db["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in compose["volumes"] and target == "/var/lib/postgresql/data"


def test_api_is_built_here_and_waits_for_a_healthy_database(compose):
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_api_publishes_the_port_it_serves_on(compose):
    api = compose["services"]["api"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = api.get("command") or json.loads(re.search(r"^CMD (.*)$", dockerfile, re.MULTILINE).group(1))
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert [mapping.rsplit(":", 1)[1] for mapping in api["ports"]] == [port]
    assert f":{port}/readyz" in " ".join(api["healthcheck"]["test"])


def test_every_api_env_var_is_a_setting(compose):
    environment = compose["services"]["api"]["environment"]
    assert set(environment) <= set(Settings.describe()), set(environment) - set(Settings.describe())
    assert {"DATABASE_URL", "API_KEYS", "EMBEDDINGS"} <= set(environment)


def test_api_keys_are_required_because_the_container_listens_on_every_interface(compose):
    assert re.fullmatch(r"\$\{API_KEYS:\?.+\}", compose["services"]["api"]["environment"]["API_KEYS"])


def test_database_url_points_at_the_db_service_with_its_credentials(compose):
    db_env = compose["services"]["db"]["environment"]
    url = compose["services"]["api"]["environment"]["DATABASE_URL"]
    assert url.startswith(f"postgresql://{db_env['POSTGRES_USER']}:")
    assert url.endswith(f"@db:5432/{db_env['POSTGRES_DB']}")


def test_image_installs_the_api_extras_with_the_constraints_but_not_the_embedded_server():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    install = re.search(r"pip install (.*)", dockerfile).group(1)
    assert "-c constraints.txt" in install and "[local,openai," in install and "embedded" not in install
    assert re.search(r"^USER (?!root)", dockerfile, re.MULTILINE)
