"""
The simulated tote market, until a live feed is wired (docs/simulation.md).

- ``model``: the market itself, pure and seedable (no ORM, no I/O): opening prices from barriers
  and handicaps, how they move, the market renormalised after a scratching, and the result drawn
  from the final chances (a dead heat, a protest's outcome).
- ``race_day``: a race's day planned from a seed, pure: scratchings early and late, driver
  changes, a dead heat, a protest, an abandonment when forced, the delays after the close; and
  what is still to come of it for a race as stored.
- ``simulation``: one race's day lived (odds every 5-10 s for about 60 s as the spec's
  Implementation Notes say, the close, interim placings, the official result), each change
  stored through ``races.services``, which numbers it and announces it for broadcasting; a
  stopped simulation resumes from what is stored.
- ``supervisor``: each process's part in running every watched race's market exactly once, with
  Redis leases and presence across processes; it hears of viewers through
  ``live.protocol.presence`` (wired in ``live.apps``).
- ``admin_actions``: the race office's "Start simulation" action.

It may import ``races`` and nothing else of ``live``.
"""
