"""
The race board in the browser: the race day (``/``) and each race's live page
(``/races/{id}/``), server-rendered templates with plain JavaScript modules that follow the same
WebSocket protocol as any third-party client (``static/live/socket.js``). A Django app of its own
(label ``board``) so that its templates and static files live beside its views.

It may import ``races`` and ``live.protocol`` (nothing of the market).
"""
