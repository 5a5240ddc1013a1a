.PHONY: run test build bench
run:
	@bash scripts/run.sh
test:
	@bash scripts/test.sh
build:
	swift build -c release
bench:
	@bash bench/run-all.sh
