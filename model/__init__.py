"""Training, export and evaluation of the shipped digit CNN (``model/mnist_cnn.onnx``).

Training needs the ``train`` extra (PyTorch, CPU); serving never imports this package's scripts.
"""
