"""Admin login is throttled (django-axes): 5 failures lock that username from that address."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from daphne.utils import parse_x_forwarded_for
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from racing.asgi import application
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_URL = "/admin/login/?next=/admin/"
PASSWORD = "a-long-office-password-41"
GUESSER = "203.0.113.5"
NEIGHBOUR = "203.0.113.6"


@pytest.fixture
def office() -> User:
    return User.objects.create_superuser("office", password=PASSWORD)


def log_in(username: str, password: str, *, address: str) -> tuple[int, str]:
    """Post the admin login form from ``address`` with a fresh browser; return status and body."""
    response = Client().post(LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)
    return response.status_code, response.content.decode()


def fail_until_locked(username: str, *, address: str) -> list[int]:
    return [log_in(username, "wrong", address=address)[0] for _ in range(settings.AXES_FAILURE_LIMIT)]


def test_the_limit_is_five_failures_and_a_lockout_of_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_a_right_password_logs_in(office):
    assert log_in("office", PASSWORD, address=GUESSER)[0] == status.HTTP_302_FOUND


def test_five_wrong_passwords_lock_out_the_username_from_that_address(office):
    statuses = fail_until_locked("office", address=GUESSER)

    assert statuses == [status.HTTP_200_OK] * 4 + [status.HTTP_429_TOO_MANY_REQUESTS]


def test_once_locked_out_the_right_password_is_refused_and_told_when_to_try_again(office):
    fail_until_locked("office", address=GUESSER)

    code, body = log_in("office", PASSWORD, address=GUESSER)

    assert code == status.HTTP_429_TOO_MANY_REQUESTS
    assert "locked out from your address" in body
    assert "Try again in 15 minutes" in body
    assert "axes_reset_username" in body


def test_a_lockout_leaves_other_addresses_and_other_users_alone(office):
    User.objects.create_superuser("steward", password=PASSWORD)
    fail_until_locked("office", address=GUESSER)

    assert log_in("office", PASSWORD, address=NEIGHBOUR)[0] == status.HTTP_302_FOUND
    assert log_in("steward", PASSWORD, address=GUESSER)[0] == status.HTTP_302_FOUND


def test_a_success_forgets_the_failures_before_it(office):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in("office", "wrong", address=GUESSER)
    assert log_in("office", PASSWORD, address=GUESSER)[0] == status.HTTP_302_FOUND

    assert fail_until_locked("office", address=GUESSER)[-1] == status.HTTP_429_TOO_MANY_REQUESTS
    assert log_in("office", "wrong", address=GUESSER)[0] == status.HTTP_429_TOO_MANY_REQUESTS


def test_a_forged_x_forwarded_for_does_not_change_the_address(office):
    """Without a proxy, REMOTE_ADDR is the peer; a header the client writes must not move it."""
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            LOGIN_URL,
            {"username": "office", "password": "wrong"},
            REMOTE_ADDR=GUESSER,
            HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}",
        )

    assert log_in("office", PASSWORD, address=GUESSER)[0] == status.HTTP_429_TOO_MANY_REQUESTS


async def asgi_request(
    method: str, path: str, *, client: list, headers=(), body: bytes = b""
) -> tuple[int, list, bytes]:
    """Send one HTTP request to the project's ASGI application with this scope client, as Daphne
    does; return the status, headers and body."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "method": method, "path": path.partition("?")[0], "query_string": path.partition("?")[2].encode(),
        "headers": [(b"host", b"localhost"), *headers], "client": client, "server": ["127.0.0.1", 8000],
    }  # fmt: skip
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(timeout=10)
    content = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            return start["status"], start["headers"], content


async def test_behind_nginx_the_address_is_the_one_daphne_reads_from_x_forwarded_for():
    """Daphne's --proxy-headers puts nginx's X-Forwarded-For into the ASGI scope's client, which
    Django makes REMOTE_ADDR: the lockout is the visitor's, not the proxy's (127.0.0.1)."""
    await database_sync_to_async(User.objects.create_superuser)("office", password=PASSWORD)

    async def log_in_through_nginx(password: str, *, visitor: str) -> int:
        forwarded = {b"x-forwarded-for": [visitor.encode()]}  # deploy/nginx.conf: $remote_addr
        client = parse_x_forwarded_for(forwarded, original_addr=["127.0.0.1", 40000])[0]
        _, headers, _ = await asgi_request("GET", LOGIN_URL, client=client)  # the form's CSRF cookie
        cookies = [value.split(b";")[0] for name, value in headers if name == b"Set-Cookie"]
        token = next(cookie for cookie in cookies if cookie.startswith(b"csrftoken=")).removeprefix(b"csrftoken=")
        form = urlencode({"username": "office", "password": password, "csrfmiddlewaretoken": token.decode()})
        posted, _, _ = await asgi_request(
            "POST", LOGIN_URL, client=client, body=form.encode(),
            headers=[(b"cookie", b"csrftoken=" + token), (b"content-type", b"application/x-www-form-urlencoded")],
        )  # fmt: skip
        return posted

    statuses = [await log_in_through_nginx("wrong", visitor=GUESSER) for _ in range(settings.AXES_FAILURE_LIMIT)]

    assert statuses == [status.HTTP_200_OK] * 4 + [status.HTTP_429_TOO_MANY_REQUESTS]
    assert await log_in_through_nginx(PASSWORD, visitor=GUESSER) == status.HTTP_429_TOO_MANY_REQUESTS
    assert await log_in_through_nginx(PASSWORD, visitor=NEIGHBOUR) == status.HTTP_302_FOUND


def test_the_feed_api_token_still_writes_from_a_locked_out_address():
    """Tokens are checked by DRF, never by the login backends: a lockout does not stop the feed."""
    race = factories.race_create(starter_count=2)
    feed_user = User.objects.create_user("tote-feed", password=PASSWORD)
    feed_user.user_permissions.add(Permission.objects.get(codename="feed_race"))
    fail_until_locked("tote-feed", address=GUESSER)
    feed = APIClient(REMOTE_ADDR=GUESSER)
    feed.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=feed_user).key}")
    odds = [{"horse_id": h, "odds": 3.0} for h in race.starters.values_list("horse_id", flat=True)]

    response = feed.post(f"/api/races/{race.pk}/odds/", json.dumps(odds), content_type="application/json")

    assert response.status_code == status.HTTP_201_CREATED
