"""chantd.notify: settings from the config, and delivery to a real HTTP receiver on loopback.

The receiver is :class:`http.server.ThreadingHTTPServer` on 127.0.0.1, port 0, in a thread of
the test (fixture ``receiver``): it records every request and answers from a script (a status
list, or holding a request until the test lets it go). Settings use small timeouts and
backoff, so the file runs in a few seconds; time is only ever bounded generously.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import socket
import stat
import time

import pytest

from chantd.notify import SCHEMA, Notifier, NotifySettings, NotifyStats
from chantlib._version import VERSION
from chantlib.config import Config
from chantlib.errors import InvalidValue

from .support import Receiver

PREFIX = "scale.daemon.git_watch.notify"
ROOT = "/srv/repos/demo"


@pytest.fixture
def receiver():
    rec = Receiver()
    rec.thread.start()
    yield rec
    rec.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """A developer's proxy must not catch the loopback receiver's requests."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CHANT_NOTIFY_URL", raising=False)


@pytest.fixture
def make():
    """``make(channel=..., url=..., **fields)``: a Notifier with fast settings, closed at the end."""
    made: list[Notifier] = []

    def _make(channel: str = "webhook", url: str | None = None, root: str = ROOT, opener=None, clock=time.time,
              **fields) -> Notifier:
        values = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "backoff_max": 0.05, **fields}
        notifier = Notifier(NotifySettings(channel=channel, url=url, **values), root, opener=opener, clock=clock)
        made.append(notifier)
        return notifier

    yield _make
    for notifier in made:
        notifier.close(timeout=0.5)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="chantd.notify")
    return caplog


def warnings_of(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chantd.notify" and r.levelno == logging.WARNING]


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def dead_url() -> str:
    """A loopback port nobody listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# the webhook and slack bodies


def test_webhook_event_and_headers_are_as_documented(receiver, make, logs):
    notifier = make("webhook", receiver.url("/hooks/chant?team=a"), clock=lambda: 1700000000.0)
    assert notifier.notify("invalid_spec", "2026-01-01-abc: bad frontmatter", spec="2026-01-01-abc",
                           where=os.path.join("a", "b"), line=3)
    assert notifier.wait_idle(10)

    [request] = receiver.requests
    assert request["method"] == "POST"
    assert request["path"] == "/hooks/chant?team=a"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"chantd/{VERSION}"
    assert int(headers["content-length"]) == len(request["body"])
    event = json.loads(request["body"])
    assert re.fullmatch(r"[0-9a-f]{32}", event.pop("id"))
    assert event == {
        "schema": SCHEMA,
        "kind": "invalid_spec",
        "message": "2026-01-01-abc: bad frontmatter",
        "repository": ROOT,
        "time": "2023-11-14T22:13:20Z",
        "details": {"spec": "2026-01-01-abc", "where": "a/b", "line": 3},
    }
    assert SCHEMA == "chant.notification/1"
    assert notifier.stats() == NotifyStats("webhook", sent=1)
    assert any(r.levelno == logging.DEBUG and "sent" in r.getMessage() for r in logs.records)
    assert not warnings_of(logs)


def test_webhook_time_is_utc_now_and_details_are_any_names_and_values(receiver, make):
    notifier = make("webhook", receiver.url())
    before = time.time()
    notifier.notify("checkout", "HEAD moved", path=ROOT.encode(), when=object, kind="branch")
    notifier.notify("checkout", "not a number", ratio=float("nan"))
    assert notifier.wait_idle(10)
    event, odd = receiver.bodies()
    assert event["kind"] == "checkout"
    assert odd["details"] == {"ratio": "nan"}
    sent = calendar.timegm(time.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before - 2 <= sent <= time.time() + 2
    assert event["details"] == {"path": str(ROOT.encode()), "when": str(object), "kind": "branch"}


def test_slack_body_is_text_with_markup_escaped(receiver, make):
    notifier = make("slack", receiver.url("/services/T0/B0/x"))
    notifier.notify("unknown_ref", "commit 1a2b names <spec> 2026-01-01-zzz & more", commit="1a2b")
    assert notifier.wait_idle(10)
    [request] = receiver.requests
    assert {k.lower(): v for k, v in request["headers"].items()}["content-type"] == "application/json"
    assert json.loads(request["body"]) == {"text": "[demo] commit 1a2b names &lt;spec&gt; 2026-01-01-zzz &amp; more"}


def test_notifications_go_out_in_order(receiver, make):
    notifier = make("webhook", receiver.url())
    for n in range(20):
        notifier.notify("checkout", f"m{n}")
    assert notifier.wait_idle(10)
    assert [b["message"] for b in receiver.bodies()] == [f"m{n}" for n in range(20)]
    assert notifier.stats().sent == 20


# retries, give-ups and a slow or dead receiver


def test_two_5xx_then_200_is_delivered_once_with_two_retries(receiver, make, logs):
    receiver.answers = [(500, {}), (503, {}), (200, {})]
    notifier = make("webhook", receiver.url(), retries=3)
    notifier.notify("invalid_spec", "bad spec")
    assert notifier.wait_idle(10)
    bodies = receiver.bodies()
    assert len(bodies) == 3
    assert len({b["id"] for b in bodies}) == 1  # the same event each time: a receiver can tell
    assert notifier.stats() == NotifyStats("webhook", sent=1, retried=2)
    assert not warnings_of(logs)


@pytest.mark.parametrize("status, headers", [(408, {}), (429, {"Retry-After": "0"}), (502, {})])
def test_retried_answers(receiver, make, status, headers):
    receiver.answers = [(status, headers)]
    notifier = make("webhook", receiver.url())
    notifier.notify("checkout", "x")
    assert notifier.wait_idle(10)
    assert notifier.stats() == NotifyStats("webhook", sent=1, retried=1)


@pytest.mark.parametrize("status", [400, 403, 404, 410, 302])
def test_other_answers_give_up_at_once(receiver, make, logs, status):
    receiver.answers = [(status, {"Location": receiver.url("/elsewhere")} if status == 302 else {})]
    notifier = make("webhook", receiver.url("/secret-token-123"), retries=3)
    notifier.notify("checkout", "x")
    assert notifier.wait_idle(10)
    assert len(receiver.requests) == 1  # not retried, and a redirect is not followed
    assert notifier.stats() == NotifyStats("webhook", failed=1)
    [warning] = warnings_of(logs)
    assert f"HTTP {status}" in warning.getMessage()
    assert warning.exc_info is None
    assert "secret-token-123" not in logs.text  # the URL's path may be a secret: never logged


def test_retries_spent_on_5xx(receiver, make, logs):
    receiver.answers = [(500, {})] * 10
    notifier = make("webhook", receiver.url(), retries=2)
    notifier.notify("checkout", "x")
    assert notifier.wait_idle(10)
    assert len(receiver.requests) == 3
    assert notifier.stats() == NotifyStats("webhook", failed=1, retried=2)
    [warning] = warnings_of(logs)
    assert "HTTP 500 (no_service)" in warning.getMessage() and "after 3 attempts" in warning.getMessage()


def test_receiver_down_costs_the_caller_nothing_and_gives_up_once(make, logs):
    notifier = make("webhook", dead_url(), retries=3)
    started = time.monotonic()
    assert notifier.notify("invalid_spec", "bad spec")
    assert time.monotonic() - started < 1.0
    assert notifier.wait_idle(10)
    assert notifier.stats() == NotifyStats("webhook", failed=1, retried=3)
    [warning] = warnings_of(logs)  # one line for the give-up, none per attempt
    assert "cannot connect" in warning.getMessage() and "after 4 attempts" in warning.getMessage()
    assert warning.exc_info is None and "Traceback" not in logs.text


def test_slow_receiver_times_out_and_the_caller_never_waits(receiver, make, logs):
    receiver.hold = True
    notifier = make("webhook", receiver.url(), timeout=0.2, retries=1)
    started = time.monotonic()
    for n in range(3):
        assert notifier.notify("checkout", f"m{n}")
    assert time.monotonic() - started < 1.0
    assert notifier.wait_idle(20)
    stats = notifier.stats()
    assert stats.failed == 3 and stats.retried == 3 and stats.sent == 0
    assert len(warnings_of(logs)) == 3
    assert all("no answer within 0.2 s" in r.getMessage() for r in warnings_of(logs))


def test_full_queue_drops_the_oldest(receiver, make, logs):
    receiver.hold = True
    notifier = make("webhook", receiver.url(), timeout=10, queue_size=3)
    notifier.notify("checkout", "m0")
    assert receiver.arrived.wait(10)  # m0 is in flight, held by the receiver
    for n in range(1, 6):
        assert notifier.notify("checkout", f"m{n}")
    assert notifier.stats().dropped == 2 and notifier.stats().pending == 4
    receiver.hold = False
    receiver.release.set()
    assert notifier.wait_idle(10)
    assert [b["message"] for b in receiver.bodies()] == ["m0", "m3", "m4", "m5"]
    assert notifier.stats() == NotifyStats("webhook", sent=4, dropped=2)
    [warning] = warnings_of(logs)  # the overflow is told once, not per drop
    assert "queue is full" in warning.getMessage()


def test_close_with_a_dead_receiver_returns_within_its_timeout(make, logs):
    notifier = make("webhook", dead_url(), retries=5, backoff=30, backoff_max=30)
    notifier.notify("checkout", "m0")
    wait_for(lambda: any("retrying" in r.getMessage() for r in logs.records))  # it pauses 15-30 s now
    notifier.notify("checkout", "m1")
    started = time.monotonic()
    notifier.close(timeout=0.3)
    assert time.monotonic() - started < 2.0
    wait_for(lambda: notifier.stats().failed == 1)  # the pause ended with the close: no further attempt
    assert notifier.stats() == NotifyStats("webhook", failed=1, dropped=1)
    assert not notifier.notify("checkout", "after close")
    notifier.close()  # again: nothing


def test_close_with_a_request_in_flight_does_not_wait_for_it(receiver, make):
    receiver.hold = True
    notifier = make("webhook", receiver.url(), timeout=5)
    notifier.notify("checkout", "m0")
    notifier.notify("checkout", "m1")
    assert receiver.arrived.wait(10)
    started = time.monotonic()
    notifier.close(timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert notifier.stats().dropped == 1  # m1 never went out; m0 ends when its attempt does
    receiver.release.set()
    wait_for(lambda: notifier.stats().pending == 0)
    assert notifier.stats().sent + notifier.stats().failed == 1


def test_close_drains_a_healthy_queue(receiver, make):
    notifier = make("webhook", receiver.url())
    for n in range(5):
        notifier.notify("checkout", f"m{n}")
    notifier.close(timeout=10)
    assert len(receiver.requests) == 5
    assert notifier.stats() == NotifyStats("webhook", sent=5)


# filters


@pytest.mark.parametrize("switches, kinds_sent", [
    ({}, ["invalid_spec", "unknown_ref", "checkout"]),
    ({"on_invalid_spec": False}, ["unknown_ref", "checkout"]),
    ({"on_unknown_ref": False}, ["invalid_spec", "checkout"]),
    ({"on_invalid_spec": False, "on_unknown_ref": False}, ["checkout"]),
])
def test_on_switches_filter_their_kind_only(receiver, make, switches, kinds_sent):
    notifier = make("webhook", receiver.url(), **switches)
    taken = [notifier.notify(kind, kind) for kind in ("invalid_spec", "unknown_ref", "checkout")]
    assert notifier.wait_idle(10)
    assert [b["kind"] for b in receiver.bodies()] == kinds_sent
    assert taken == [kind in kinds_sent for kind in ("invalid_spec", "unknown_ref", "checkout")]


def test_channel_none_takes_nothing(make):
    notifier = make("none")
    assert not notifier.notify("checkout", "x")
    assert notifier.stats() == NotifyStats("none")
    notifier.close()


def test_a_kind_is_a_word():
    notifier = Notifier(NotifySettings(channel="none"), ROOT)
    with pytest.raises(ValueError):
        notifier.notify("", "x")


# the desktop channel


def fake_notify_send(folder, body: str) -> str:
    folder.mkdir(exist_ok=True)
    script = folder / "notify-send"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def test_desktop_runs_notify_send(tmp_path, monkeypatch, make, logs):
    calls = tmp_path / "calls.txt"
    folder = fake_notify_send(tmp_path / "bin", f"for a in \"$@\"; do printf '%s\\n' \"$a\" >> '{calls}'; done\n")
    monkeypatch.setenv("PATH", folder + os.pathsep + os.environ.get("PATH", ""))
    notifier = make("desktop")
    notifier.notify("invalid_spec", "-spec 2026-01-01-abc has errors")
    assert notifier.wait_idle(10)
    assert calls.read_text().splitlines() == ["--app-name=chant", "--", "chant: demo",
                                              "-spec 2026-01-01-abc has errors"]
    assert notifier.stats() == NotifyStats("desktop", sent=1)
    assert not warnings_of(logs)


def test_desktop_without_notify_send_goes_to_the_log(tmp_path, monkeypatch, make, logs):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    notifier = make("desktop")
    notifier.notify("unknown_ref", "commit 1a2b names 2026-01-01-zzz, which is no spec")
    assert notifier.wait_idle(10)
    [warning] = warnings_of(logs)
    assert "unknown_ref" in warning.getMessage()
    assert "commit 1a2b names 2026-01-01-zzz, which is no spec" in warning.getMessage()
    assert notifier.stats() == NotifyStats("desktop", logged=1)


def test_desktop_notify_send_failing_goes_to_the_log(tmp_path, monkeypatch, make, logs):
    folder = fake_notify_send(tmp_path / "bin", "echo 'cannot reach the session bus' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", folder)
    notifier = make("desktop")
    notifier.notify("invalid_spec", "spec x has errors")
    assert notifier.wait_idle(10)
    [warning] = warnings_of(logs)
    assert "spec x has errors" in warning.getMessage()
    assert "exited with 1 (cannot reach the session bus)" in warning.getMessage()
    assert notifier.stats() == NotifyStats("desktop", failed=1)


# settings from the config


def config(**notify) -> Config:
    return Config({"scale": {"daemon": {"git_watch": {"notify": notify}}}})


def test_defaults():
    settings = NotifySettings.from_config(Config(), environ={})
    assert (settings.channel, settings.url, settings.timeout, settings.retries) == ("desktop", None, 5.0, 3)
    assert settings.on_invalid_spec and settings.on_unknown_ref
    assert settings.queue_size == 256


def test_every_key_is_read():
    settings = NotifySettings.from_config(
        config(channel="Webhook", url=" https://hooks.example/x ", timeout="2.5", retries=0, on_invalid_spec=False,
               on_unknown_ref=False), environ={})
    assert settings.channel == "webhook" and settings.url == "https://hooks.example/x"
    assert settings.timeout == 2.5 and settings.retries == 0
    assert not settings.on_invalid_spec and not settings.on_unknown_ref


def test_env_url_wins(monkeypatch):
    monkeypatch.setenv("CHANT_NOTIFY_URL", "https://from-env.example/hook")
    settings = NotifySettings.from_config(config(channel="slack", url="https://from-config.example/hook"))
    assert settings.url == "https://from-env.example/hook"
    assert "hook" not in repr(settings) and settings.target == "slack https://from-env.example/…"


@pytest.mark.parametrize("value", [None, False, "none", "NONE"])
def test_channel_off(value):
    assert NotifySettings.from_config(config(channel=value), environ={}).channel == "none"


@pytest.mark.parametrize("notify, message", [
    ({"channel": "email"}, f"config {PREFIX}.channel must be desktop, slack, webhook or none, got 'email'"),
    ({"channel": 3}, f"config {PREFIX}.channel must be desktop, slack, webhook or none, got 3"),
    ({"channel": "slack"}, f"config {PREFIX}.channel is slack but no URL is set: set {PREFIX}.url or CHANT_NOTIFY_URL"),
    ({"channel": "webhook", "url": ""}, f"config {PREFIX}.channel is webhook but no URL is set"),
    ({"channel": "webhook", "url": "file:///etc/passwd"},
     f"config {PREFIX}.url must be an http:// or https:// URL, got file:…"),
    ({"channel": "webhook", "url": "localhost:8080/hook"},
     f"config {PREFIX}.url must be an http:// or https:// URL, got one without http:// or https://"),
    ({"channel": "webhook", "url": "ftp://host/x"}, f"config {PREFIX}.url must be an http:// or https:// URL, got ftp://host/…"),
    ({"channel": "webhook", "url": "hooks.example/T0/SECRET"},
     f"config {PREFIX}.url must be an http:// or https:// URL, got one without http:// or https://"),
    ({"channel": "webhook", "url": "http:///x"}, f"config {PREFIX}.url must be an http:// or https:// URL"),
    ({"channel": "webhook", "url": "http://host:port/x"}, f"config {PREFIX}.url is not a valid URL"),
    ({"url": 5}, f"config {PREFIX}.url must be an http:// or https:// URL, got 5"),
    ({"timeout": 0}, f"config {PREFIX}.timeout must be a positive number of seconds, got 0"),
    ({"timeout": -1}, f"config {PREFIX}.timeout must be a positive number of seconds, got -1"),
    ({"timeout": "soon"}, f"config {PREFIX}.timeout must be a positive number of seconds, got 'soon'"),
    ({"timeout": True}, f"config {PREFIX}.timeout must be a positive number of seconds, got True"),
    ({"timeout": float("inf")}, f"config {PREFIX}.timeout must be a positive number of seconds"),
    ({"retries": -1}, f"config {PREFIX}.retries must be a whole number from 0 to 10, got -1"),
    ({"retries": 1.5}, f"config {PREFIX}.retries must be a whole number from 0 to 10, got 1.5"),
    ({"retries": 11}, f"config {PREFIX}.retries must be a whole number from 0 to 10, got 11"),
    ({"retries": "many"}, f"config {PREFIX}.retries must be a whole number from 0 to 10, got 'many'"),
    ({"on_invalid_spec": "yes"}, f"config {PREFIX}.on_invalid_spec must be true or false, got 'yes'"),
    ({"on_unknown_ref": None}, f"config {PREFIX}.on_unknown_ref must be true or false, got None"),
])
def test_config_errors(notify, message):
    with pytest.raises(InvalidValue) as caught:
        NotifySettings.from_config(config(**notify), environ={})
    assert caught.value.message.startswith(message)
    assert "SECRET" not in caught.value.message and "passwd" not in caught.value.message
    assert "\n" not in caught.value.message


def test_env_url_errors_name_the_variable():
    with pytest.raises(InvalidValue, match="^CHANT_NOTIFY_URL must be an http:// or https:// URL"):
        NotifySettings.from_config(config(channel="slack"), environ={"CHANT_NOTIFY_URL": "mailto:me@example.com"})
