"""
Who watches which race, as this process's connections know it, for whoever needs to hear of it:
the simulated market starts a race's market with its first viewer and stops it after its last
(the spec's Implementation Notes). The protocol does not know the market: listeners register here
(``live.apps`` wires the market's), and each connection tells the listeners when it starts and
stops watching.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ViewerListener(Protocol):
    def viewer_joined(self, race_id: int) -> None: ...

    def viewer_left(self, race_id: int) -> None: ...


# Each returns the listener for the running event loop, or None when it does not want to hear.
ListenerForLoop = Callable[[], ViewerListener | None]

_listeners: list[ListenerForLoop] = []


def listen(listener_for_loop: ListenerForLoop) -> None:
    """Tell ``listener_for_loop()`` of every viewer from now on (once, however often called)."""
    if listener_for_loop not in _listeners:
        _listeners.append(listener_for_loop)


def viewer_joined(race_id: int) -> tuple[ViewerListener, ...]:
    """Tell every listener that a connection watches the race; return those told, to be told
    again when it stops (``viewer_left``)."""
    told = []
    for listener_for_loop in _listeners:
        listener = listener_for_loop()
        if listener is not None:
            listener.viewer_joined(race_id)
            told.append(listener)
    return tuple(told)


def viewer_left(race_id: int, told: tuple[ViewerListener, ...]) -> None:
    for listener in told:
        listener.viewer_left(race_id)
