//! Embedded implementations of the three seams, for standalone mode (issue #6).
