"""The CLI's commands, one module per area; each module has ``register(app)``.

``dispatcher.cli`` finds every module here (except :mod:`.common`) and
registers it, so adding a command means adding a module, nothing else.
"""
