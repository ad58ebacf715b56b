# CONTEXT {'guest_os': 'UBUNTU'}
# Example model image. BASE_DOCKER is overridable with --additional-context '{"docker_build_arg": {"BASE_DOCKER": "..."}}';
# the default is the local Debian image that `bash dev/engine.sh up` makes (no registry is needed).
ARG BASE_DOCKER=madengine-base:bookworm
FROM $BASE_DOCKER
ENV MAD_EXAMPLE_IMAGE=dummy
