"""
The live side of the race-day server: what reaches fans as it happens. Three packages, each with
one job, and imports that run one way (``board`` -> ``protocol``/``market``; ``protocol`` and
``market`` never import each other):

- ``live.protocol``: the WebSocket protocol of ``/ws/races/{race_id}``, the per-process fan-out
  of each race's updates, and the adapter over Daphne's internals it runs on. A change to a
  message, a close code, a limit or a resume goes here.
- ``live.market``: the simulated tote market (a pure model), a race's simulation, and the
  supervisor that runs each watched race's market exactly once across processes. A change to how
  odds move or when a market runs goes here.
- ``live.board``: the pages fans open in a browser (the race day, a race's live board), with
  their templates and static files. A change to what a fan sees goes here.

``live.apps`` wires them to each other and to the racing domain (``races.events``), and
``live.health`` reports the process's counts at ``/healthz``. ``races`` never imports ``live``.
"""
