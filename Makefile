# Two entry points; each sets this machine up first (idempotent, see scripts/setup.sh).
.PHONY: demo destroy test setup lint unit

demo: setup          ## Provision a local container into a vLLM server and print a completion
	scripts/demo.sh

destroy:             ## Remove the container 'make demo' left running
	scripts/destroy.sh

test: setup          ## Lint, unit tests and the Molecule scenarios
	scripts/test.sh

setup:
	scripts/setup.sh

lint: setup
	scripts/test.sh lint

unit: setup
	scripts/test.sh unit
