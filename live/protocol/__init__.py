"""
The live protocol: ``/ws/races/{race_id}`` as ../shared/spec/websocket-schema.md defines it and
docs/protocol.md describes it, ``/ws/live`` (many races on one connection), and everything that
carries a race's updates to its clients.

- ``messages``: the only module that knows a message's wire shape; ``broadcasting``: the one path
  by which an update reaches a race's channel-layer group; ``receivers``: broadcasts what the
  racing domain announces (``races.events``).
- ``consumers``: the two endpoints; ``connection``: what every connection shares (limits,
  reading messages, sending, the ``lease`` that gives everything back); ``streams``: one
  connection's stream of one race; ``cursor``: where a stream stands in the race's numbered
  updates (pure); ``fanout``: each process's single member of a race's group, writing each update
  once to every local socket; ``join_states``: the race as a joining client is sent it, read once
  per process in a connection storm.
- ``limits``, ``security``, ``routing``: rate and address limits, the origin check, the routes.
- ``presence``: the seam through which the market hears of viewers, without this package
  knowing the market.
- ``daphne``: the one adapter over Daphne, Twisted and autobahn internals (close reasons, the
  prepared-frame fast path, send buffers, request limits), verified against the installed
  libraries when the process starts.

It may import ``races`` (selectors and serializers) and nothing else of ``live``.
"""
