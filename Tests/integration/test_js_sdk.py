"""The JavaScript packages against a live hub: collabhub (client, MessageStore, outbox), collabhub/server (tokens,
HTTP API, batched run publishing with retries, webhooks) and @collabhub/react (hooks rendered with Debian's
react-test-renderer while a second client acts). Each test runs a Node script of Tests/integration/sdk/ in a folder
whose node_modules links the packages (Sources/Clients/js, Sources/Clients/react) and Debian's node packages
(ws, react, react-test-renderer), as `npm install` would lay them out."""
import os
import shutil
import subprocess

import pytest

import conftest

ADMIN = "admin-key-for-the-sdk-tests-0123456789"
SECRET = "jwt-secret-for-the-sdk-tests-0123456789"
DEBIAN = "/usr/share/nodejs"
SDK = os.path.join(conftest.ROOT, "Tests", "integration", "sdk")

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir(os.path.join(DEBIAN, "ws")),
                                reason="node and node-ws needed")


def node_modules(tmp_path):
    """A node_modules of symbolic links: the two packages and everything Debian installed under /usr/share/nodejs."""
    nm = tmp_path / "node_modules"
    (nm / "@collabhub").mkdir(parents=True)
    for name in os.listdir(DEBIAN):
        if not (nm / name).exists():
            (nm / name).symlink_to(os.path.join(DEBIAN, name))
    (nm / "collabhub").symlink_to(os.path.join(conftest.ROOT, "Sources", "Clients", "js"))
    (nm / "@collabhub" / "react").symlink_to(os.path.join(conftest.ROOT, "Sources", "Clients", "react"))
    return nm


def run_script(tmp_path, name, hub, timeout=90, **env):
    node_modules(tmp_path)
    script = tmp_path / name
    shutil.copy(os.path.join(SDK, name), script)
    # --preserve-symlinks: a package resolves its own imports (react, collabhub) from this node_modules, so
    # React is one instance for the hooks and the renderer.
    cmd = [shutil.which("node"), "--preserve-symlinks", str(script)]
    e = {"PATH": "/usr/bin:/bin", "HUB": hub.http, "ADMIN": ADMIN, "SECRET": SECRET, "NODE_ENV": "development", **env}
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=e)
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def sdk_hub(make_hub, *extra):
    return make_hub("--threads", "2", "--admin-key", ADMIN, "--jwt-secret", SECRET, "--limit-chat", "100", *extra)


def test_client_store_and_offline_outbox(make_hub, tmp_path):
    hub = sdk_hub(make_hub)
    assert "OK client" in run_script(tmp_path, "client_live.mjs", hub)
    assert hub.alive()


def test_server_module_tokens_api_runs_and_webhooks(make_hub, tmp_path):
    hub = sdk_hub(make_hub, "--webhook-allow-private")
    assert "OK server" in run_script(tmp_path, "server_live.mjs", hub)
    assert hub.alive()


@pytest.mark.skipif(not os.path.isdir(os.path.join(DEBIAN, "react-test-renderer")), reason="node-react-test-renderer needed")
def test_react_hooks_follow_a_live_room(make_hub, tmp_path):
    hub = sdk_hub(make_hub, "--reconnect-grace", "1")
    assert "OK react" in run_script(tmp_path, "react_live.mjs", hub)
    assert hub.alive()
