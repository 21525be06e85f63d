//! The deployable artifacts, proven on this machine: the container image (built from the
//! `Dockerfile` with podman and run in every role), `docker-compose.yml`, the Kustomize
//! overlays under `deploy/k8s/`, and the observability pack under `deploy/observability/`.
//!
//! Needs the tools `scripts/install-deploy-tools.sh` installs (podman, podman-compose,
//! kustomize, kubernetes-validate, promtool) and the local stack; a missing tool fails the
//! test with the command that installs it, never skips it.
#![cfg(feature = "deploy")]
#![allow(missing_docs)]

#[path = "../distributed/mod.rs"]
mod distributed;

mod tools;

mod compose;
mod image;
mod k8s;
mod observability;
