"""One call model for both transports (ARI mode and AGI mode).

``events`` and ``actions`` are what goes in and out; ``route_walk`` is where a call
goes next (routes, schedules, geo, fallbacks); ``ledger`` keeps a call's books (steps,
rings, path, outcome); ``path`` holds the path entries. ``ari_flow`` is ARI mode's
state machine (with ``menus`` and ``queues``); ``agi_plan`` unrolls the walk for AGI
mode's dialplan and ``agi_tracker`` follows it from AMI events.
"""
