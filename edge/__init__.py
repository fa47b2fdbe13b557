"""emotion-edge on-device runtime.

Imports here stay light: numpy, OpenCV, LiteRT, paho-mqtt and small pure-Python
libraries. Never TensorFlow, Keras or MediaPipe (a test asserts it).
"""

__version__ = "0.1.0"
