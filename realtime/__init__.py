"""Adapters around the core, grouped by where the code runs.

The sans-I/O WebSocket protocol sits at the top (:mod:`realtime.protocol`, :mod:`realtime.messages`,
:mod:`realtime.access`, :mod:`realtime.logs`, :mod:`realtime.paths`); :mod:`realtime.server` is the
local ASGI server, :mod:`realtime.aws` the Lambda handlers, and :mod:`realtime.tools` the command line,
the replay client and the API Gateway emulator. See ``docs/architecture.md``.
"""
