"""The ``mnist-live`` command line and its clients: predict, replay and the API Gateway emulator."""
