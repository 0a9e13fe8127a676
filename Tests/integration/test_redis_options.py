"""The Redis options of `serve` (`--redis`, `--redis-ca/-cert/-key`, `--redis-wait-replicas/-timeout-ms`), read
once into one value (`RedisOptions`): from every configuration layer (flag, environment, file) with refusals that
name the layer the value came from, and a password in a `--redis` URL on the command line warned about, never
printed; a URL without one is not warned about. (Refusals by flag: test_cluster_tls.py, test_redis_wait.py.)"""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BINARY, Hub
from test_cluster import Redis

REDIS = shutil.which("redis-server")
ADMIN = "redis-options-admin-key-0123"


def config_check(tmp_path, *args, env=None, config=None):
    cmd = [BINARY, "config", "check", "--data", str(tmp_path / "data"), *args]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        cmd += ["--config", str(tmp_path / "config.json")]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COLLABHUB_")}
    environment.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=environment)


def test_the_redis_settings_come_from_the_environment_and_the_file(tmp_path):
    p = config_check(tmp_path, env={"COLLABHUB_REDIS": "redis://:pw-s3cret@127.0.0.1:6390/2"},
                     config={"redis-wait-replicas": 2, "redis-wait-timeout-ms": 50})
    assert p.returncode == 0, p.stderr
    lines = {line.split()[0]: line for line in p.stdout.splitlines() if line.startswith("redis")}
    assert '"********"' in lines["redis"] and "# COLLABHUB_REDIS" in lines["redis"], lines
    assert "= 2 " in lines["redis-wait-replicas"] and "# file" in lines["redis-wait-replicas"], lines
    assert "= 50 " in lines["redis-wait-timeout-ms"] and "# file" in lines["redis-wait-timeout-ms"], lines
    assert "(not set)" in lines["redis-ca"] and "# default" in lines["redis-ca"], lines
    assert "pw-s3cret" not in p.stdout + p.stderr


def test_refusals_name_the_layer_the_value_came_from(tmp_path):
    cases = [
        ({"env": {"COLLABHUB_REDIS_CA": "/etc/hosts"}}, "COLLABHUB_REDIS_CA needs --redis with a rediss:// URL"),
        ({"config": {"redis-wait-replicas": 17}}, '"redis-wait-replicas" in'),
        ({"config": {"redis-wait-replicas": 17}}, "must be 0-16"),
        ({"env": {"COLLABHUB_REDIS_WAIT_TIMEOUT_MS": "0"}},
         "COLLABHUB_REDIS_WAIT_TIMEOUT_MS must be 1-2000 (the Redis reply watchdog is 3 s)"),
        ({"env": {"COLLABHUB_REDIS": "redis://:pw-s3cret@127.0.0.1:6390"}, "config": {"redis-cert": "/etc/hosts"}},
         "COLLABHUB_REDIS is not usable: the Redis TLS settings (--redis-ca, --redis-cert, --redis-key) need a "
         "rediss:// URL"),
        ({"env": {"COLLABHUB_REDIS": "rediss://:pw-s3cret@127.0.0.1:6390", "COLLABHUB_REDIS_CERT": "/etc/hosts",
                  "COLLABHUB_REDIS_KEY": str(tmp_path / "missing.key")}},
         "COLLABHUB_REDIS_KEY cannot be read ("),
        # The wait settings are checked before the URL, as they always were.
        ({"env": {"COLLABHUB_REDIS": "http://x", "COLLABHUB_REDIS_WAIT_REPLICAS": "99"}},
         "COLLABHUB_REDIS_WAIT_REPLICAS must be 0-16"),
    ]
    for kwargs, says in cases:
        p = config_check(tmp_path, **kwargs)
        assert p.returncode == 2, (kwargs, p.stdout[-300:])
        assert says in p.stderr, (kwargs, p.stderr)
        assert "pw-s3cret" not in p.stderr


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")
def test_a_password_in_the_redis_url_on_the_command_line_is_warned_about(tmp_path):
    (tmp_path / "r1").mkdir(); (tmp_path / "r2").mkdir()
    locked = Redis(tmp_path / "r1", password="pw-s3cret-123").start()
    plain = Redis(tmp_path / "r2").start()
    try:
        outputs = []
        for redis in (locked, plain):
            hub = Hub("--redis", redis.url, "--admin-key", ADMIN, data_dir=str(tmp_path / f"node{redis.port}"))
            hub.start()
            time.sleep(0.3)
            hub.stop()
            outputs.append(hub.output())
        warned, quiet = outputs
        assert "--redis on the command line is visible" in warned and "COLLABHUB_REDIS_FILE" in warned, warned
        assert "pw-s3cret-123" not in warned
        assert "--redis on the command line" not in quiet, quiet
        # The admin key is a secret either way.
        assert "--admin-key on the command line is visible" in quiet, quiet
    finally:
        locked.stop(); plain.stop()
