# Convenience targets over CMake (build/).  The quick start needs only the
# two scripts: scripts/example.sh and scripts/check.sh.
BUILD ?= build

all:
	./scripts/build.sh

check test:
	./scripts/check.sh

example:
	./scripts/example.sh

bench: all
	./scripts/deps.sh bench
	cmake --build $(BUILD) --target bench

reliability: all
	cmake --build $(BUILD) --target reliability

format:
	./scripts/format.sh

clean:
	rm -rf $(BUILD)

.PHONY: all check test example bench reliability format clean
