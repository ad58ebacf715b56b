# CONTEXT {'ctx_test': '1', 'guest_os': 'UBUNTU'}
# Chosen when the context says "ctx_test": "1" (any context key can select Dockerfiles this way).
ARG BASE_DOCKER=madengine-base:bookworm
FROM $BASE_DOCKER
ENV ctxtest=1
