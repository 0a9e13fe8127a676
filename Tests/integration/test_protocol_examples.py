"""Replays every exchange in Protocol/examples against the running hub, validating every server message."""
import asyncio
import glob
import json
import os

import pytest

from hubclient import PROTOCOL, Client, create_session

EXAMPLES = sorted(glob.glob(os.path.join(PROTOCOL, "examples", "*.json")))


def match(expected, actual, saved, path="$"):
    if isinstance(expected, str) and expected.startswith("$"):
        if expected == "$any":
            return
        if expected == "$int":
            assert isinstance(actual, int), f"{path}: expected an integer, got {actual!r}"
            return
        if expected.startswith("$save:"):
            saved[expected[6:]] = actual
            return
        assert actual == saved[expected[1:]], f"{path}: expected {expected}={saved[expected[1:]]!r}, got {actual!r}"
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for k, v in expected.items():
            assert k in actual, f"{path}: missing key {k!r} in {actual}"
            match(v, actual[k], saved, f"{path}.{k}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: expected {expected}, got {actual}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            match(e, a, saved, f"{path}[{i}]")
        return
    assert expected == actual, f"{path}: expected {expected!r}, got {actual!r}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example(session_hub, path):
    example = json.load(open(path))

    async def run():
        code = create_session(session_hub)["code"]
        clients, saved = {}, {}
        for i, step in enumerate(example["steps"]):
            name = step["as"]
            if step.get("connect"):
                clients[name] = await Client.connect(session_hub, code)
            if "send" in step:
                await clients[name].send(step["send"])
            if "expect" in step:
                got = await clients[name].recv()
                try:
                    match(step["expect"], got, saved)
                except AssertionError as e:
                    raise AssertionError(f"step {i} ({name}): {e}") from None
        await Client.close_all()

    asyncio.run(run())
