"""App events policy, run pause/resume with run_control forwarding, and the activity log."""
import asyncio
import json

import websockets

from hubclient import Client, api, create_session, eventually, run
from test_runs import KEY, publish, runs_hub, watch  # noqa: F401  (fixture)


def test_event_names_restricted_per_role(runs_hub):
    async def main():
        created = create_session(runs_hub, events={"editor": ["request_*"]})
        assert api(runs_hub, "GET", f"/api/sessions/{created['code']}")[1]["events"] == {"editor": ["request_*"]}
        a = await Client.connect(runs_hub, created["code"])
        await a.join("Ann")
        await a.send({"type": "event", "name": "env_changed", "data": {}})
        err = await a.expect("error")
        assert err["code"] == "forbidden" and err["field"] == "name"
        # The host widens the policy over HTTP; it applies at once.
        status, _ = api(runs_hub, "PATCH", f"/api/sessions/{created['code']}", {"events": {"editor": ["request_*", "env_*"]}},
                        {"X-Host-Key": created["host_key"]})
        assert status == 200
        await a.send({"type": "event", "name": "env_changed", "id": "e", "durable": True, "data": {"env": "prod"}})
        assert (await a.expect("ack"))["id"] == "e"
    run(main())


def test_run_control_pause_resume_round_trip(runs_hub):
    """A member asks to pause a run attached to the session; the hub forwards it to the run's publisher
    socket; the worker publishes `paused`; the room sees it; no step may start until `resumed`."""
    async def main():
        created = create_session(runs_hub)
        code = created["code"]
        host = await Client.connect(runs_hub, code)
        await host.join("Host", host_key=created["host_key"])
        worker = await websockets.connect(f"{runs_hub.url}/publish?key={KEY['X-API-Key']}", close_timeout=1)
        await worker.send(json.dumps({"run": "ctl-1", "type": "started", "owner": "ci", "session": code}))
        assert json.loads(await worker.recv())["seqs"] == [1]
        await worker.send(json.dumps({"run": "ctl-1", "type": "step_started", "step": "deploy"}))
        await worker.recv()
        assert (await host.expect("run"))["event"] == "started"
        assert (await host.expect("run"))["event"] == "step_started"

        await host.send({"type": "run_control", "run": "ctl-1", "action": "resume", "id": "r0"})
        assert (await host.expect("error"))["code"] == "illegal_transition"
        await host.send({"type": "run_control", "run": "ctl-1", "action": "pause", "id": "p1"})
        assert (await host.expect("run_control_sent"))["id"] == "p1"
        control = json.loads(await worker.recv())
        assert control["type"] == "control" and control["action"] == "pause" and control["by"]["name"] == "Host"
        await worker.send(json.dumps({"run": "ctl-1", "type": "paused", "by": control["by"]["name"]}))
        await worker.recv()
        paused = await host.expect("run")
        assert paused["event"] == "paused" and paused["run"]["status"] == "paused"
        status, body = publish(runs_hub, "ctl-1", {"type": "step_started", "step": "next"})
        assert status == 409 and "paused" in body["error"]["message"]
        await worker.send(json.dumps({"run": "ctl-1", "type": "resumed"}))
        await worker.recv()
        assert (await host.expect("run"))["run"]["status"] == "running"
        assert publish(runs_hub, "ctl-1", {"type": "step_completed", "step": "deploy"})[0] == 202
        await worker.close()
        # No publisher connected any more: the request is refused, not lost silently.
        await host.send({"type": "run_control", "run": "ctl-1", "action": "pause"})
        assert (await host.expect("error", skip=("run", "presence")))["code"] == "no_publisher"
        # A run of another session cannot be controlled from here.
        other = create_session(runs_hub)["code"]
        publish(runs_hub, "ctl-2", {"type": "started", "owner": "ci", "session": other})
        await host.send({"type": "run_control", "run": "ctl-2", "action": "pause"})
        assert (await host.expect("error", skip=("run", "presence")))["code"] == "forbidden"
        return code, created["host_key"]
    code, host_key = run(main())

    async def removal():
        h = await Client.connect(runs_hub, code)
        await h.join("Host", host_key=host_key)
        b = await Client.connect(runs_hub, code)
        you = (await b.join("Bob"))["you"]["id"]
        await h.send({"type": "remove", "member": you})
        try:
            while True:
                await b.recv()
        except websockets.ConnectionClosed as e:
            assert e.rcvd.code == 4005
    run(removal())
    assert api(runs_hub, "PATCH", f"/api/sessions/{code}", {"guest_policy": "deny"}, {"X-Host-Key": host_key})[0] == 200
    assert api(runs_hub, "PATCH", f"/api/sessions/{code}", {"guest_policy": "allow"}, {"X-Host-Key": "bad"})[0] == 401   # a wrong host key is no credential
    assert api(runs_hub, "POST", f"/api/sessions/{code}/end", {}, {"X-Host-Key": host_key})[0] == 202

    expected = ["session_created", "run_controlled", "member_removed", "guest_policy_changed", "session_ended"]

    def logged():
        # Entries are committed with the next group commit: poll until they are all there.
        status, log = api(runs_hub, "GET", f"/api/activity?session={code}")
        assert status == 200
        return log if all(a in [e["action"] for e in log["activity"]] for a in expected) else None
    log = eventually(logged, what=f"activity entries {expected}")
    controlled = next(e for e in log["activity"] if e["action"] == "run_controlled")
    assert controlled["target"] == "ctl-1" and controlled["details"] == "pause" and "Host" in controlled["actor"]
    assert controlled["address"] == "127.0.0.1"
    assert [e["id"] for e in log["activity"]] == sorted((e["id"] for e in log["activity"]), reverse=True)
    page = api(runs_hub, "GET", f"/api/activity?session={code}&limit=2")[1]
    assert len(page["activity"]) == 2 and isinstance(page["next"], str)
    older = api(runs_hub, "GET", f"/api/activity?session={code}&cursor={page['next']}")[1]
    assert older["activity"][0]["id"] < page["activity"][-1]["id"]
    # The older way (`before`, an id) still works.
    before = api(runs_hub, "GET", f"/api/activity?session={code}&before={page['activity'][-1]['id']}")[1]
    assert before["activity"] == older["activity"]
