# Two commands for users: `make test` and `make demo`. Each sets up what is missing first (a .venv with pinned
# ROS 2 Kilted wheels, torch 2.13.0 CPU and the other dependencies; the build of our interfaces against the venv's
# ROS prefix); a second run skips what is done.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BUILD_DIR := build/pip
LOG_DIR := build/logs
# The activated environment (ROS variables, library paths) for every command below.
IN_VENV := . $(VENV)/bin/activate &&

DEPS_STAMP := $(VENV)/.rlvla-deps
# Inside the build dir: the installed files link into it (symlink install), so removing it must rebuild.
BUILD_STAMP := $(BUILD_DIR)/.rlvla-build
INTERFACE_FILES := $(wildcard msg/*.msg srv/*.srv action/*.action)
SHARE_FILES := $(shell find launch config -type f)
NODE_FILES := $(wildcard rlvla_ros/nodes/*.py)

.PHONY: setup test demo clean

setup: $(BUILD_STAMP)

test: setup
	$(IN_VENV) python -m pytest test $(PYTEST_ARGS)

demo: setup
	$(IN_VENV) rlvla demo

$(DEPS_STAMP): requirements.txt requirements-ros-wheels.txt requirements-nodeps.txt setup.py tools/activate_hook.sh tools/fix_wheel_cmake_paths.py
	@mkdir -p $(LOG_DIR)
	@echo "[setup] creating $(VENV) and installing pinned dependencies (log: $(LOG_DIR)/pip.log)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@# torch first and alone: its local CPU wheel must satisfy every later requirement, so no CUDA build is pulled.
	@$(PY) -m pip install torch==2.13.0 > $(LOG_DIR)/pip.log 2>&1 \
		&& $(PY) -m pip install -r requirements.txt -r requirements-ros-wheels.txt >> $(LOG_DIR)/pip.log 2>&1 \
		&& $(PY) -m pip install --no-deps -r requirements-nodeps.txt >> $(LOG_DIR)/pip.log 2>&1 \
		&& $(PY) -m pip install --no-deps --no-build-isolation --config-settings editable_mode=compat -e . \
			>> $(LOG_DIR)/pip.log 2>&1 \
		|| { tail -n 40 $(LOG_DIR)/pip.log; exit 1; }
	@$(PY) tools/fix_wheel_cmake_paths.py $(VENV)
	@sed -i '/^# >>> rlvla_ros >>>$$/,/^# <<< rlvla_ros <<<$$/d' $(VENV)/bin/activate
	@cat tools/activate_hook.sh >> $(VENV)/bin/activate
	@touch $@

$(BUILD_STAMP): $(DEPS_STAMP) CMakeLists.txt package.xml $(INTERFACE_FILES) $(SHARE_FILES) $(NODE_FILES)
	@echo "[setup] building rlvla_ros interfaces into $(VENV) (log: $(LOG_DIR)/build.log)"
	@$(IN_VENV) cmake -S . -B $(BUILD_DIR) -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) \
		-DCMAKE_PREFIX_PATH=$(CURDIR)/$(VENV) -DPython3_EXECUTABLE=$(CURDIR)/$(PY) \
		-DRLVLA_INSTALL_PYTHON_SOURCES=OFF -DAMENT_CMAKE_SYMLINK_INSTALL=ON -DBUILD_TESTING=OFF \
		> $(LOG_DIR)/build.log 2>&1 \
		&& $(IN_VENV) cmake --build $(BUILD_DIR) --target install -j 2 >> $(LOG_DIR)/build.log 2>&1 \
		|| { tail -n 40 $(LOG_DIR)/build.log; exit 1; }
	@touch $@

clean:
	rm -rf build $(VENV)
